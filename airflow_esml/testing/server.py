"""The simulator's HTTP layer: a threaded HTTP/1.1 server on loopback and the request pipeline.

Each request goes: route match, fault injection, media-type (``compatible-with``) check,
authentication, handler, audit. Handlers see a :class:`~airflow_esml.testing.protocol.SimRequest`
and never touch sockets.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from airflow_esml.testing.faults import FaultInjector
from airflow_esml.testing.protocol import AuditLog, EsError, EsVersion, Handler, SimRequest
from airflow_esml.testing.tls import Authenticator

log = logging.getLogger(__name__)

_COMPAT_PREFIX = "application/vnd.elasticsearch+"


@dataclass
class RawResponse:
    """Bytes ready for the wire; ``reset`` closes the socket without answering."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    reset: bool = False


class _PlainError(Exception):
    """An error whose body is not the usual envelope (e.g. "no handler found")."""

    def __init__(self, status: int, body: dict[str, Any], headers: list[tuple[str, str]] | None = None):
        super().__init__(body.get("error"))
        self.status = status
        self.body = body
        self.headers = headers or []


@dataclass(frozen=True)
class _Route:
    method: str
    segments: tuple[str, ...]
    handler: Handler
    name: str
    control: bool

    def match(self, parts: list[str]) -> dict[str, str] | None:
        if len(parts) != len(self.segments):
            return None
        params: dict[str, str] = {}
        for seg, part in zip(self.segments, parts, strict=False):
            if seg.startswith("{"):
                if not part:
                    return None
                params[seg[1:-1]] = part
            elif seg != part:
                return None
        return params

    @property
    def specificity(self) -> tuple[bool, ...]:
        return tuple(not s.startswith("{") for s in self.segments)


def endpoint_name(method: str, template: str) -> str:
    """Default endpoint name of a route: its last literal segment without ``_`` (``_start`` -> ``start``).

    :param method: HTTP method.
    :param template: path template such as ``/_ml/trained_models/{model_id}/_stats``.
    """
    if template.rstrip("/") == "/_ml/info":
        return "ml_info"
    literals = [s for s in template.strip("/").split("/") if s and not s.startswith("{")]
    if not literals:
        return "info" if method in ("GET", "HEAD") else "root"
    last = literals[-1]
    return "models" if last == "trained_models" else last.lstrip("_")


class Router:
    """Routes matched by method and path template; the most literal template wins, as in ES's PathTrie."""

    def __init__(self) -> None:
        self._routes: list[_Route] = []

    def add(
        self, method: str, template: str, handler: Handler, *, name: str | None = None, control: bool = False
    ) -> None:
        """Register a route.

        :param control: a simulator-only ``/_sim/`` route: never subject to injected faults.
        """
        segments = tuple(template.strip("/").split("/")) if template.strip("/") else ()
        route = _Route(method.upper(), segments, handler, name or endpoint_name(method, template), control)
        self._routes.append(route)

    def add_all(self, routes: Iterable[tuple[str, str, Handler]]) -> None:
        for method, template, handler in routes:
            self.add(method, template, handler)

    def match(self, method: str, raw_path: str, uri: str) -> tuple[_Route, dict[str, str]]:
        """The route for a request, or a :class:`_PlainError` (400 no handler / 405 wrong method)."""
        stripped = raw_path.strip("/")
        parts = [unquote(p) for p in stripped.split("/")] if stripped else []
        found = [(r, p) for r in self._routes if (p := r.match(parts)) is not None]
        same_method = [(r, p) for r, p in found if r.method == method]
        if same_method:
            return max(same_method, key=lambda rp: rp[0].specificity)
        if found:
            allowed = sorted({r.method for r, _ in found})
            reason = f"Incorrect HTTP method for uri [{uri}] and method [{method}], allowed: [{', '.join(allowed)}]"
            raise _PlainError(405, {"error": reason, "status": 405}, [("Allow", ",".join(allowed))])
        raise _PlainError(400, {"error": f"no handler found for uri [{uri}] and method [{method}]"})


def _compat_version(value: str | None) -> int | None:
    if not value:
        return None
    for part in value.split(";")[1:]:
        key, _, val = part.strip().partition("=")
        if key.strip().lower() == "compatible-with" and val.strip().isdigit():
            return int(val.strip())
    return None


def check_media_types(version: EsVersion, headers: dict[str, str], has_body: bool) -> int | None:
    """Validate ``compatible-with`` in Accept/Content-Type like ES's RestCompatibleVersionHelper.

    :return: the requested compatible version (to echo in the response), or ``None``.
    """
    current, minimum = version.major, version.major - 1
    accept, ctype = headers.get("accept"), headers.get("content-type")
    a_ver, c_ver = _compat_version(accept), _compat_version(ctype)
    message = None
    if a_ver is not None and not minimum <= a_ver <= current:
        message = f"Accept version must be either version {current} or {minimum}, but found {a_ver}. Accept={accept}"
    elif has_body and c_ver is not None and not minimum <= c_ver <= current:
        message = (
            f"Content-Type version must be either version {current} or {minimum}, but found {c_ver}. "
            f"Content-Type={ctype}"
        )
    elif has_body and a_ver is not None and c_ver is not None and a_ver != c_ver:
        message = (
            "A compatible version is required on both Content-Type and Accept headers if either one has "
            "requested a compatible version and the compatible versions must match. "
            f"Accept={accept}, Content-Type={ctype}"
        )
    if message:
        raise EsError(
            400,
            "media_type_header_exception",
            "Invalid media-type value on headers [Accept, Content-Type]",
            caused_by={"type": "status_exception", "reason": message},
        )
    return a_ver if a_ver is not None else c_ver


def _parse_body(headers: dict[str, str], data: bytes) -> Any:
    if not data:
        return None
    ctype = headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if ctype not in ("application/json", _COMPAT_PREFIX + "json"):
        reason = f"Content-Type header [{headers.get('content-type')}] is not supported"
        raise _PlainError(406, {"error": reason, "status": 406})
    try:
        return json.loads(data)
    except ValueError as exc:
        raise EsError(400, "x_content_parse_exception", f"[1:1] Unexpected character: {exc}") from None


class SimApp:
    """The request pipeline shared by every connection thread.

    :param router: the routes.
    :param audit: where every request is recorded.
    :param version: the simulated Elasticsearch version (media-type rules).
    :param auth: credential check, or ``None`` for an open cluster.
    :param faults: the fault injector.
    :param stopping: set when the server stops; cuts injected latency short.
    """

    def __init__(
        self,
        *,
        router: Router,
        audit: AuditLog,
        version: EsVersion,
        auth: Authenticator | None,
        faults: FaultInjector,
        stopping: threading.Event,
    ) -> None:
        self.router, self.audit, self.version = router, audit, version
        self.auth, self.faults, self.stopping = auth, faults, stopping

    def handle(self, method: str, target: str, headers: dict[str, str], data: bytes) -> RawResponse:
        started = time.monotonic()
        split = urlsplit(target)
        endpoint: str | None = None
        compat: int | None = None
        try:
            route, params = self.router.match(method, split.path, target)
            endpoint = route.name
            if not route.control:
                fault = self.faults.decide(endpoint, method=method, path=split.path)
                if fault is not None:
                    if fault.latency:
                        self.stopping.wait(fault.latency)
                    if fault.reset:
                        response = RawResponse(0, reset=True)
                        self._audit(method, split.path, endpoint, response, started)
                        return response
                    if fault.error is not None:
                        raise fault.error
            compat = check_media_types(self.version, headers, bool(data))
            if self.auth is not None:
                self.auth.check(headers, target)
            request = SimRequest(
                method=method,
                path=unquote(split.path),
                path_params=params,
                query=dict(parse_qsl(split.query, keep_blank_values=True)),
                body=_parse_body(headers, data),
                headers=headers,
            )
            result = route.handler(request)
            response = self._encode(result.status, result.body, compat, head=method == "HEAD")
        except EsError as err:
            response = self._encode(err.status, err.to_body(), compat)
            response.headers.extend(_error_headers(err))
        except _PlainError as err:
            response = self._encode(err.status, err.body, compat)
            response.headers.extend(err.headers)
        except Exception:
            log.exception("simulator handler failed for %s %s", method, split.path)
            error = EsError(500, "exception", "simulator internal error; see the simulator's log")
            response = self._encode(500, error.to_body(), compat)
        self._audit(method, split.path, endpoint, response, started)
        return response

    def _encode(self, status: int, body: Any, compat: int | None, *, head: bool = False) -> RawResponse:
        ctype = f"{_COMPAT_PREFIX}json;compatible-with={compat}" if compat else "application/json"
        payload = b"" if head or body is None else json.dumps(body).encode()
        return RawResponse(status, payload, [("Content-Type", ctype)])

    def _audit(self, method: str, path: str, endpoint: str | None, response: RawResponse, started: float) -> None:
        self.audit.record(
            "request",
            method=method,
            path=unquote(path),
            endpoint=endpoint,
            status=None if response.reset else response.status,
            reset=response.reset,
            duration=time.monotonic() - started,
        )


def _error_headers(err: EsError) -> list[tuple[str, str]]:
    header = err.extra.get("header")
    if not isinstance(header, dict):
        return []
    return [(name, value) for name, values in header.items() for value in values]


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
