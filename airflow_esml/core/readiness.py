"""The one decision core behind every wait: the operator's, the sensor's poke and the trigger's.

:func:`assess` looks at one :class:`~airflow_esml.core.status.DeploymentStatus` and says whether the awaited
allocations are started (``success``), can still start (``waiting``) or never will (``failed``);
:func:`judge` does the same for what a stats request returned, an error included.
:class:`WaitWindow` turns a wait's start and absolute deadline into the progress line each poll logs.
Pure Python, so that operators, sensors and triggers share it without importing any client.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from airflow_esml.core.params import cut
from airflow_esml.core.status import TERMINAL_STATES, DeploymentStatus
from airflow_esml.exceptions import DeploymentFailedError, DeploymentNotFoundError, EsmlError, TransientRequestError

Outcome = Literal["success", "waiting", "failed", "timeout"]


@dataclass(frozen=True)
class Verdict:
    """The result of one look at a deployment.

    :param outcome: success, waiting or failed (and timeout, set by the waiting loop at the deadline).
    :param message: the progress line, or the reason of a failure.
    :param status: the status looked at, if the stats request answered.
    """

    outcome: Outcome
    message: str
    status: DeploymentStatus | None = None

    @property
    def done(self) -> bool:
        return self.outcome != "waiting"

    def to_event(self) -> dict[str, Any]:
        """The payload of a trigger event: JSON-safe, read back by :func:`verdict_from_event`."""
        return {
            "status": self.outcome,
            "message": self.message,
            "deployment": self.status.to_dict() if self.status else None,
        }


def verdict_from_event(event: dict[str, Any] | None) -> Verdict:
    """Read a trigger event back; an absent or malformed event is a failure that says so."""
    if not event or event.get("status") not in ("success", "failed", "timeout"):
        return Verdict("failed", f"the trigger ended with an unexpected event: {event!r}")
    deployment = event.get("deployment")
    status = DeploymentStatus.from_dict(deployment) if deployment else None
    return Verdict(event["status"], str(event.get("message", "")), status)


#: the errors that a wait in a worker turns into a verdict; others (credentials, TLS) keep their own type
WAIT_ERRORS: tuple[type[Exception], ...] = (TransientRequestError, DeploymentNotFoundError)
#: what one stats request gave a waiter: the deployment's status, or the error it ended with
Result = DeploymentStatus | BaseException


def judge(
    deployment_id: str, result: Result, min_allocations: int | None, window: WaitWindow, last: Verdict
) -> Verdict:
    """What one stats result means for a wait: the one mapping from errors to verdicts.

    A request that kept failing transiently (after the hook's retries) means "still waiting"; any other
    error fails the wait, with the provider's message (or the error's type for anything else).

    :param deployment_id: the deployment waited on.
    :param result: the deployment's status, or the error its stats request raised.
    :param min_allocations: started allocations needed; None means the deployment's whole target.
    :param window: the wait's start and deadline, for the progress line.
    :param last: the previous verdict, whose status an error verdict carries on.
    """
    if isinstance(result, TransientRequestError):
        return Verdict("waiting", f"{cut(deployment_id)}: {result}; will poll again", last.status)
    if isinstance(result, EsmlError):
        return Verdict("failed", str(result), last.status)
    if isinstance(result, BaseException):
        return Verdict("failed", f"{cut(deployment_id)}: {type(result).__name__}: {cut(str(result), 300)}", last.status)
    return assess(result, min_allocations, progress=window.progress())


def outcome(verdict: Verdict, timeout_error: type[Exception]) -> dict[str, Any] | None:
    """The status dict of a successful wait; raises for a failed or timed-out one.

    :param timeout_error: what a timeout raises (the sensor raises Airflow's own sensor timeout).
    """
    if verdict.outcome == "failed":
        raise DeploymentFailedError(verdict.message)
    if verdict.outcome == "timeout":
        raise timeout_error(verdict.message)
    return verdict.status.to_dict() if verdict.status else None


def required_allocations(status: DeploymentStatus, min_allocations: int | None) -> int:
    """How many started allocations the wait needs: ``min_allocations``, else the whole target (at least 1, so a
    deployment scaled to zero is waited on until an allocation starts; 0 only when asked for explicitly)."""
    return max(1, status.target_allocations) if min_allocations is None else min_allocations


def assess(status: DeploymentStatus, min_allocations: int | None = None, *, progress: str = "") -> Verdict:
    """Decide whether the awaited allocations of ``status`` are started.

    :param status: the deployment as the stats API shows it now.
    :param min_allocations: started allocations needed; None means the deployment's whole target.
    :param progress: text appended to the progress line (elapsed and total time).
    """
    name = status.deployment_id
    needed = required_allocations(status, min_allocations)
    if status.state in TERMINAL_STATES or status.state is None:
        return Verdict("failed", _failure_message(status, needed), status)
    if needed > status.target_allocations and not status.adaptive_enabled:
        return Verdict(
            "failed",
            f"{name}: waiting for {needed} started allocations, but the deployment's target is only "
            f"{status.target_allocations}; scale it up first",
            status,
        )
    nodes = "scaled to zero: an inference call or a scale-up starts one" if status.scaled_to_zero else None
    line = f"{name}: {status.started_allocations}/{needed} allocations started ({nodes or status.describe_nodes()})" + (
        f", {progress}" if progress else ""
    )
    # never ready on allocation_status.state alone (0 of 0 is "fully_allocated"): only started allocations count,
    # and only a wait for 0 (an explicit scale to zero) is over with none
    if status.started_allocations >= needed and (status.serving or needed == 0):
        return Verdict("success", line, status)
    return Verdict("waiting", line, status)


def _failure_message(status: DeploymentStatus, needed: int) -> str:
    state = status.state or "not deployed"
    message = f"{status.deployment_id}: deployment is {state}, so {needed} allocations cannot start"
    if status.failed_nodes:
        message += "; failed nodes: " + "; ".join(
            f"{n.name}: {n.reason or 'no reason given'}" for n in status.failed_nodes
        )
    if status.reason:
        message += f"; reason: {status.reason}"
    return message


@dataclass(frozen=True)
class WaitWindow:
    """A wait that started at ``started_at`` and ends at the absolute wall-clock ``end_time``.

    Wall-clock (epoch seconds), not monotonic, because a deferred wait moves between processes.
    """

    started_at: float
    end_time: float

    @classmethod
    def starting_now(cls, timeout: float, *, now: float | None = None) -> WaitWindow:
        start = time.time() if now is None else now
        return cls(start, start + timeout)

    def remaining(self, now: float | None = None) -> float:
        return max(0.0, self.end_time - (time.time() if now is None else now))

    def expired(self, now: float | None = None) -> bool:
        return self.remaining(now) <= 0

    def progress(self, now: float | None = None) -> str:
        """``41s of 600s`` (with tenths under ten seconds: ``0.4s of 2.0s``)."""
        elapsed = (time.time() if now is None else now) - self.started_at
        total = self.end_time - self.started_at
        digits = 0 if total >= 10 else 1
        return f"{elapsed:.{digits}f}s of {total:.{digits}f}s"

    def timed_out(self, last: Verdict) -> Verdict:
        """The timeout verdict, carrying the last status seen."""
        return Verdict("timeout", f"timed out after {self.progress()}; last seen: {last.message}", last.status)
