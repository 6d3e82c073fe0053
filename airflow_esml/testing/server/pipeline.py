"""The request pipeline of the simulator's HTTP server, independent of sockets.

Each request goes: route match, fault injection, media-type (``compatible-with``) check, the Serverless
flavour's 410s, authentication, authorization of the route's transport actions (403), the Serverless
flavour's refusal of fixed counts, handler, audit. Handlers see a :class:`~airflow_esml.testing.protocol.SimRequest`
and return a :class:`~airflow_esml.testing.protocol.SimResponse` (or raise an ``EsError``); the
pipeline turns the outcome into a :class:`RawResponse` for the wire.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from airflow_esml.testing.protocol import AuditLog, EsError, EsVersion, SimRequest
from airflow_esml.testing.server import serverless as serverless_flavour
from airflow_esml.testing.server.auth import Authenticator, Principal
from airflow_esml.testing.server.faults import FaultInjector
from airflow_esml.testing.server.privileges import RouteContext, checks_for
from airflow_esml.testing.server.routing import PlainError, Router

log = logging.getLogger(__name__)

_COMPAT_PREFIX = "application/vnd.elasticsearch+"


@dataclass
class RawResponse:
    """Bytes ready for the wire; ``reset`` closes the socket without answering."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    reset: bool = False


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
    if ctype in ("application/x-ndjson", _COMPAT_PREFIX + "x-ndjson"):
        return _parse_ndjson(data)
    if ctype not in ("application/json", _COMPAT_PREFIX + "json"):
        reason = f"Content-Type header [{headers.get('content-type')}] is not supported"
        raise PlainError(406, {"error": reason, "status": 406})
    try:
        return json.loads(data)
    except ValueError as exc:
        raise EsError(400, "x_content_parse_exception", f"[1:1] Unexpected character: {exc}") from None


def _parse_ndjson(data: bytes) -> list[Any]:
    """An NDJSON body (``_bulk``): one JSON value per non-empty line."""
    lines = []
    for number, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            lines.append(json.loads(line))
        except ValueError as exc:
            raise EsError(400, "x_content_parse_exception", f"[{number}:1] Unexpected character: {exc}") from None
    return lines


class SimApp:
    """The request pipeline shared by every connection thread.

    :param router: the routes.
    :param audit: where every request is recorded.
    :param version: the simulated Elasticsearch version (media-type rules).
    :param auth: credential check, or ``None`` for an open cluster.
    :param faults: the fault injector.
    :param stopping: set when the server stops; cuts injected latency short.
    :param serverless: answer as an Elastic Cloud Serverless project (see :mod:`.serverless`).
    :param index_exists: whether an index exists (a write to a missing one also needs ``auto_create``).
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
        serverless: bool = False,
        index_exists: Callable[[str], bool] = lambda name: True,
    ) -> None:
        self.router, self.audit, self.version = router, audit, version
        self.auth, self.faults, self.stopping = auth, faults, stopping
        self.serverless, self.index_exists = serverless, index_exists

    def handle(self, method: str, target: str, headers: dict[str, str], data: bytes) -> RawResponse:
        started = time.monotonic()
        split = urlsplit(target)
        endpoint: str | None = None
        compat: int | None = None
        try:
            check_initial_line(method, target)
            route, params = self.router.match(method, split.path, target)
            endpoint = route.name
            if not route.control:
                fault = self.faults.decide(endpoint, method=method, path=split.path)
                if fault is not None:
                    if fault.latency:
                        self.stopping.wait(fault.latency)
                    if fault.reset:
                        response = RawResponse(0, reset=True)
                        self._audit(method, split.path, endpoint, response, started, headers)
                        return response
                    if fault.error is not None:
                        raise fault.error
            compat = check_media_types(self.version, headers, bool(data))
            if self.serverless and not route.control:
                serverless_flavour.check_request(method, route.template, target, None)
            query = dict(parse_qsl(split.query, keep_blank_values=True))
            if self.auth is not None:
                principal = self.auth.check(headers, target)
                if not route.control:
                    self._authorize(principal, method, route.template, params, query)
            request = SimRequest(
                method=method,
                path=unquote(split.path),
                path_params=params,
                query=query,
                body=_parse_body(headers, data),
                headers=headers,
            )
            if self.serverless and not route.control:
                serverless_flavour.check_request(method, route.template, target, request.body)
            result = route.handler(request)
            response = self._encode(result.status, result.body, compat, head=method == "HEAD")
            response.headers.extend(result.headers)
        except EsError as err:
            response = self._encode(err.status, err.to_body(), compat)
            response.headers.extend(_error_headers(err))
        except PlainError as err:
            response = self._encode(err.status, err.body, compat)
            response.headers.extend(err.headers)
        except Exception:
            log.exception("simulator handler failed for %s %s", method, split.path)
            error = EsError(500, "exception", "simulator internal error; see the simulator's log")
            response = self._encode(500, error.to_body(), compat)
        self._audit(method, split.path, endpoint, response, started, headers)
        return response

    def _authorize(
        self, principal: Principal, method: str, template: str, params: dict[str, str], query: dict[str, str]
    ) -> None:
        """Raise Elasticsearch's 403 unless ``principal`` may run every transport action of the route."""
        context = RouteContext(self.version, params, query, self.index_exists)
        for check in checks_for(method, template, context) or ():
            principal.authorize(check, self.version)

    def _encode(self, status: int, body: Any, compat: int | None, *, head: bool = False) -> RawResponse:
        ctype = f"{_COMPAT_PREFIX}json;compatible-with={compat}" if compat else "application/json"
        payload = b"" if head or body is None else json.dumps(body).encode()
        return RawResponse(status, payload, [("Content-Type", ctype)])

    def _audit(
        self,
        method: str,
        path: str,
        endpoint: str | None,
        response: RawResponse,
        started: float,
        headers: dict[str, str],
    ) -> None:
        self.audit.record(
            "request",
            method=method,
            path=unquote(path),
            endpoint=endpoint,
            status=None if response.reset else response.status,
            reset=response.reset,
            duration=time.monotonic() - started,
            # who asked: the client's X-Opaque-Id (the connection's ``opaque_id`` extra), as Elasticsearch
            # shows it in its task list and slow logs
            opaque_id=headers.get("x-opaque-id"),
        )


#: Elasticsearch's default ``http.max_initial_line_length`` (elastic/elasticsearch,
#: server/src/main/java/org/elasticsearch/http/HttpTransportSettings.java)
MAX_INITIAL_LINE_LENGTH = 4096


def check_initial_line(method: str, target: str) -> None:
    """Refuse a request line longer than ``http.max_initial_line_length``, as Netty's HTTP decoder does."""
    if len(f"{method} {target} HTTP/1.1") > MAX_INITIAL_LINE_LENGTH:
        reason = f"An HTTP line is larger than {MAX_INITIAL_LINE_LENGTH} bytes."
        raise EsError(400, "too_long_http_line_exception", reason)


def _error_headers(err: EsError) -> list[tuple[str, str]]:
    header = err.extra.get("header")
    if not isinstance(header, dict):
        return []
    return [(name, value) for name, values in header.items() for value in values]
