"""Fault injection: scripted or seeded-random error statuses, connection resets and latency per endpoint."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from airflow_esml.testing.protocol import AuditLog, EsError, Route, SimRequest, SimResponse

#: statuses a fault may answer with, and the envelope each one gets.
_FAULT_ERRORS: dict[int, tuple[str, str]] = {
    429: (
        "es_rejected_execution_exception",
        "rejected execution of TimedRunnable{original=ActionRunnable#wrap, timeout=30s} on "
        "EsThreadPoolExecutor[name = sim-node-1/ml_utility, queue capacity = 500, task execution EWMA = 1ms]",
    ),
    502: ("status_exception", "simulated fault: bad gateway"),
    503: ("cluster_block_exception", "blocked by: [SERVICE_UNAVAILABLE/2/no master];"),
    504: ("status_exception", "simulated fault: gateway timeout"),
}


def fault_error(status: int) -> EsError:
    """The ES-like error a fault with ``status`` answers with."""
    type_, reason = _FAULT_ERRORS.get(status, ("status_exception", f"simulated fault: status [{status}]"))
    return EsError(status, type_, reason)


@dataclass
class Fault:
    """One injected fault.

    :param endpoint: endpoint name (``start``, ``update``, ``doc_get``...) or ``None`` for every endpoint.
    :param status: answer with this error status.
    :param reset: close the connection without answering.
    :param latency: seconds to wait before answering (or before the error/reset).
    :param times: how many more matching requests it applies to; ``None`` = until cleared.
    :param probability: chance (seeded RNG) that it applies to each matching request; ``None`` = always.
    """

    endpoint: str | None = None
    status: int | None = None
    reset: bool = False
    latency: float = 0.0
    times: int | None = None
    probability: float | None = None

    @property
    def fails(self) -> bool:
        return self.reset or self.status is not None


@dataclass
class FaultDecision:
    """What to do to one request."""

    latency: float = 0.0
    reset: bool = False
    error: EsError | None = None


class FaultInjector:
    """Thread-safe set of faults, decided with a seeded RNG so runs are reproducible.

    :param rng: random source for probabilistic faults.
    :param audit: records ``fault_injected`` for each applied fault.
    """

    def __init__(self, *, rng: random.Random, audit: AuditLog) -> None:
        self._rng = rng
        self._audit = audit
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        if fault.status is not None and not 400 <= fault.status <= 599:
            raise ValueError(f"fault status must be an HTTP error status, got {fault.status}")
        if fault.probability is not None and not 0.0 <= fault.probability <= 1.0:
            raise ValueError(f"probability must be between 0 and 1, got {fault.probability}")
        if fault.times is not None and fault.times < 1:
            raise ValueError(f"times must be at least 1, got {fault.times}")
        if fault.latency < 0:
            raise ValueError(f"latency must not be negative, got {fault.latency}")
        if not fault.fails and not fault.latency:
            raise ValueError("a fault needs a status, reset=True or a latency")
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def active(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def decide(self, endpoint: str, *, method: str, path: str) -> FaultDecision | None:
        """The faults that apply to this request: summed latency and the first error or reset."""
        decision = FaultDecision()
        applied: list[Fault] = []
        with self._lock:
            for fault in self._faults:
                if fault.endpoint not in (None, endpoint):
                    continue
                if fault.fails and (decision.reset or decision.error is not None):
                    continue
                if fault.probability is not None and self._rng.random() >= fault.probability:
                    continue
                applied.append(fault)
                decision.latency += fault.latency
                decision.reset = decision.reset or fault.reset
                if fault.status is not None and not fault.reset:
                    decision.error = fault_error(fault.status)
                if fault.times is not None:
                    fault.times -= 1
            self._faults = [f for f in self._faults if f.times is None or f.times > 0]
        for fault in applied:
            self._audit.record(
                "fault_injected",
                endpoint=endpoint,
                method=method,
                path=path,
                status=None if fault.reset else fault.status,
                reset=fault.reset,
                latency=fault.latency,
            )
        return decision if applied else None

    def routes(self) -> list[Route]:
        """Simulator-only control routes: ``POST /_sim/faults`` (body: Fault fields) and ``DELETE /_sim/faults``."""
        return [("POST", "/_sim/faults", self._post), ("DELETE", "/_sim/faults", self._delete)]

    def _post(self, request: SimRequest) -> SimResponse:
        body = request.body or {}
        if not isinstance(body, dict):
            raise EsError(400, "illegal_argument_exception", "fault body must be a JSON object")
        allowed = set(Fault.__dataclass_fields__)
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise EsError(400, "illegal_argument_exception", f"unknown fault fields {unknown}")
        try:
            self.add(Fault(**body))
        except (TypeError, ValueError) as exc:
            raise EsError(400, "illegal_argument_exception", str(exc)) from None
        return SimResponse(200, {"acknowledged": True, "faults": len(self.active())})

    def _delete(self, request: SimRequest) -> SimResponse:
        self.clear()
        return SimResponse(200, {"acknowledged": True})
