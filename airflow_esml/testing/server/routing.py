"""Routing of the simulator's HTTP server: path templates matched like Elasticsearch's ``PathTrie``.

Also the endpoint names that faults and the audit log use, and the plain (envelope-less) errors that
Elasticsearch's ``RestController`` answers for unknown paths and wrong methods.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from airflow_esml.testing.protocol import Handler


class PlainError(Exception):
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
    template: str = ""

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
        route = _Route(method.upper(), segments, handler, name or endpoint_name(method, template), control, template)
        self._routes.append(route)

    def add_all(self, routes: Iterable[tuple[str, str, Handler]]) -> None:
        for method, template, handler in routes:
            self.add(method, template, handler)

    def routes(self) -> list[tuple[str, str, str, bool]]:
        """``(method, template, name, control)`` of every route, in the order they were added."""
        return [(r.method, r.template, r.name, r.control) for r in self._routes]

    def match(self, method: str, raw_path: str, uri: str) -> tuple[_Route, dict[str, str]]:
        """The route for a request, or a :class:`PlainError` (400 no handler / 405 wrong method)."""
        stripped = raw_path.strip("/")
        parts = [unquote(p) for p in stripped.split("/")] if stripped else []
        found = [(r, p) for r in self._routes if (p := r.match(parts)) is not None]
        if found:  # ES's trie prefers a literal segment; that path's methods decide (405 if not among them)
            best = max(r.specificity for r, _ in found)
            found = [(r, p) for r, p in found if r.specificity == best]
        same_method = [(r, p) for r, p in found if r.method == method]
        if same_method:
            return same_method[0]
        if found:
            allowed = sorted({r.method for r, _ in found})
            reason = f"Incorrect HTTP method for uri [{uri}] and method [{method}], allowed: [{', '.join(allowed)}]"
            raise PlainError(405, {"error": reason, "status": 405}, [("Allow", ",".join(allowed))])
        raise PlainError(400, {"error": f"no handler found for uri [{uri}] and method [{method}]"})
