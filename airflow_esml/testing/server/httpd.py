"""The simulator's socket layer: a threaded HTTP/1.1 server on loopback that hands each request to a
:class:`~airflow_esml.testing.server.pipeline.SimApp`, and can end idle keep-alive connections on stop."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from airflow_esml.testing.server.pipeline import SimApp

log = logging.getLogger(__name__)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as Elasticsearch: no 40 ms delayed-ACK stalls on kept-alive connections
    server: SimHTTPServer

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        response = self.server.app.handle(self.command, self.path, headers, data)
        if response.reset:
            self._reset()
            return
        self.send_response(response.status)
        self.send_header("X-Elastic-Product", "Elasticsearch")
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.body:
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _dispatch

    def _reset(self) -> None:
        """Abort the connection with a TCP RST and no response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.server.forget(self.connection)
        self.connection.close()

    def log_message(self, format: str, *args: Any) -> None:  # request line only, never headers
        log.debug("%s - %s", self.address_string(), format % args)


class SimHTTPServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that tracks its connections so ``close()`` can end idle keep-alive ones.

    :param address: ``(host, port)``; port 0 picks a free port.
    :param app: the request pipeline.
    :param ssl_context: serve HTTPS with this server-side context.
    """

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: SimApp, ssl_context: ssl.SSLContext | None = None):
        self.app = app
        self._conn_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        super().__init__(address, _RequestHandler)
        if ssl_context is not None:
            self.socket = ssl_context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def forget(self, request: Any) -> None:
        with self._conn_lock:
            self._connections.discard(request)

    def shutdown_request(self, request: Any) -> None:
        self.forget(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open connection so blocked handler threads return."""
        with self._conn_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)
