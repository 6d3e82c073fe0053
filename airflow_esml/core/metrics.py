"""Performance figures of a deployment, and a simple performance condition to wait for.

Pure Python, read from a :class:`~airflow_esml.core.status.DeploymentStatus` (the stats API's per-node
``throughput_last_minute``, ``average_inference_time_ms`` and ``number_of_pending_requests``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from airflow_esml.core.readiness import Verdict
from airflow_esml.core.status import DeploymentStatus


@dataclass(frozen=True)
class DeploymentMetrics:
    """What the stats API says about a deployment's performance at one moment.

    :param throughput_last_minute: inferences in the last minute, summed over the nodes.
    :param peak_throughput_per_minute: the deployment's peak inferences per minute.
    :param average_inference_time_ms: mean inference time, weighted by each node's inference count.
    :param pending_requests: requests queued on the nodes.
    :param pending_per_allocation: ``pending_requests`` per started allocation (None with none started).
    :param inference_count: inferences since the deployment started.
    :param started_allocations: allocations started when the figures were read.
    """

    deployment_id: str
    started_allocations: int
    throughput_last_minute: int
    peak_throughput_per_minute: int
    average_inference_time_ms: float | None
    pending_requests: int
    pending_per_allocation: float | None
    inference_count: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """``4 allocations started, throughput 1180/min (peak 2410/min), average inference time 24.7 ms, ...``."""
        average = "n/a" if self.average_inference_time_ms is None else f"{self.average_inference_time_ms:.1f} ms"
        per_allocation = "n/a" if self.pending_per_allocation is None else f"{self.pending_per_allocation:.2f}"
        return (
            f"{self.started_allocations} allocations started, throughput {self.throughput_last_minute}/min "
            f"last minute (peak {self.peak_throughput_per_minute}/min), average inference time {average}, "
            f"{self.pending_requests} pending requests ({per_allocation} per allocation), "
            f"{self.inference_count} inferences so far"
        )


def pending_per_allocation(status: DeploymentStatus) -> float | None:
    """Queued requests per started allocation; None while no allocation is started."""
    if status.started_allocations <= 0:
        return None
    return status.pending_requests / status.started_allocations


def metrics_of(status: DeploymentStatus) -> DeploymentMetrics:
    """The performance figures of ``status``."""
    average = status.average_inference_time_ms
    return DeploymentMetrics(
        deployment_id=status.deployment_id,
        started_allocations=status.started_allocations,
        throughput_last_minute=status.throughput_last_minute,
        peak_throughput_per_minute=status.peak_throughput_per_minute,
        average_inference_time_ms=None if average is None else round(average, 3),
        pending_requests=status.pending_requests,
        pending_per_allocation=pending_per_allocation(status),
        inference_count=status.inference_count,
    )


def judge_performance(verdict: Verdict, max_pending_per_allocation: float | None) -> Verdict:
    """Add the performance condition to a readiness verdict (see :func:`airflow_esml.core.readiness.assess`).

    A ``success`` stays a success only while the pending requests per started allocation are at most
    ``max_pending_per_allocation``; otherwise it becomes ``waiting``. Other verdicts pass unchanged.

    :param verdict: the readiness verdict of one look at the deployment.
    :param max_pending_per_allocation: the bound; None means no condition.
    """
    if max_pending_per_allocation is None or verdict.outcome != "success" or verdict.status is None:
        return verdict
    status = verdict.status
    per_allocation = pending_per_allocation(status)
    if per_allocation is None:
        return Verdict("waiting", f"{verdict.message}; no allocation started to take requests", status)
    figure = f"{status.pending_requests} pending requests = {per_allocation:.2f} per allocation"
    if per_allocation <= max_pending_per_allocation:
        return Verdict("success", f"{verdict.message}; {figure} (bound {max_pending_per_allocation:g})", status)
    return Verdict(
        "waiting",
        f"{verdict.message}; {figure}, above the bound of {max_pending_per_allocation:g}; waiting for the queue "
        "to drain",
        status,
    )
