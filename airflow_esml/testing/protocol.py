"""Types shared by the simulator's HTTP layer and its cluster model.

The HTTP server (:mod:`airflow_esml.testing.server`) parses each request into a :class:`SimRequest`, hands it to a
route handler and writes the :class:`SimResponse` back (or the envelope of an :class:`EsError`).
Handlers never touch sockets; the cluster model never parses HTTP.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, order=True)
class EsVersion:
    """An Elasticsearch version such as ``8.19.3``; compares as a tuple."""

    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> EsVersion:
        parts = [int(p) for p in text.split("-")[0].split(".")]
        if len(parts) < 2 or len(parts) > 3:
            raise ValueError(f"es_version must look like 9.1 or 8.19.3, got {text!r}")
        return cls(*parts)

    def at_least(self, text: str) -> bool:
        return self >= EsVersion.parse(text)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass
class SimRequest:
    """One parsed HTTP request.

    :param method: upper-case HTTP method.
    :param path: the URL path, percent-decoded.
    :param path_params: values of the ``{name}`` parts of the matched route.
    :param query: query parameters (last value wins, as in Elasticsearch).
    :param body: the parsed JSON body, or ``None`` when the request had no body.
    :param headers: request headers, keys lower-cased.
    """

    method: str
    path: str
    path_params: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def has_body(self) -> bool:
        return self.body is not None


@dataclass
class SimResponse:
    """A handler's answer: a status, a JSON-serialisable body and extra headers (e.g. ``Warning``)."""

    status: int
    body: Any
    headers: list[tuple[str, str]] = field(default_factory=list)


class EsError(Exception):
    """An Elasticsearch error, written as its JSON envelope (``error.root_cause[]``, ``type``,
    ``reason``, ``status``)."""

    def __init__(
        self,
        status: int,
        type: str,
        reason: str,
        *,
        caused_by: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {type}: {reason}")
        self.status = status
        self.type = type
        self.reason = reason
        self.caused_by = caused_by
        self.extra = extra or {}

    def to_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "root_cause": [{"type": self.type, "reason": self.reason, **self.extra}],
            "type": self.type,
            "reason": self.reason,
            **self.extra,
        }
        if self.caused_by:
            error["caused_by"] = self.caused_by
        return {"error": error, "status": self.status}


Handler = Callable[[SimRequest], SimResponse]
# (HTTP method, path template such as "/_ml/trained_models/{model_id}/deployment/_start", handler)
Route = tuple[str, str, Handler]


@dataclass(frozen=True)
class AuditEvent:
    """One entry of the audit log.

    :param at: wall-clock time (``time.time()``) of the event.
    :param kind: ``"request"`` for an HTTP request, or a state change such as
        ``"target_changed"``, ``"route_state"``, ``"deployment_started"``, ``"deployment_stopped"``,
        ``"node_added"``, ``"node_failed"``, ``"fault_injected"``, ``"document_written"``.
    :param data: the event's fields (for ``target_changed``: ``deployment_id``, ``old``, ``new``).
    """

    at: float
    kind: str
    data: Mapping[str, Any]


class AuditLog:
    """Thread-safe, append-only record of requests and state changes, queryable by tests."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._events: list[AuditEvent] = []

    def record(self, kind: str, *, at: float | None = None, **data: Any) -> AuditEvent:
        event = AuditEvent(self._clock() if at is None else at, kind, data)
        with self._lock:
            self._events.append(event)
        return event

    def events(self, kind: str | None = None, **match: Any) -> list[AuditEvent]:
        """Events in time order, optionally only those of ``kind`` whose data has ``match``."""
        with self._lock:
            events = sorted(self._events, key=lambda e: e.at)
        return [
            e for e in events if (kind is None or e.kind == kind) and all(e.data.get(k) == v for k, v in match.items())
        ]

    def target_history(self, deployment_id: str) -> list[tuple[float, int]]:
        """``(time, target)`` for each change of the deployment's ``number_of_allocations``."""
        return [(e.at, int(e.data["new"])) for e in self.events("target_changed", deployment_id=deployment_id)]
