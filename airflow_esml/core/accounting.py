"""Capacity accounting: what a window of scaled-up capacity cost, and how much of it inference used.

A *window* is the time in which the provider holds a deployment above its baseline: from a scale-up
(``UpdateDeploymentOperator``, a lease's acquire, a reservation) to the task that ends it (the scale-down, the
lease's release, the reservation's end). :func:`open_window` records, at the scale-up, the baseline, the
allocations held and a snapshot of the deployment's work so far; :func:`close_window` compares it with the
snapshot at the end.

The work comes from the stats API (``GET _ml/trained_models/<id>/_stats``), so the figures are the same on a
real cluster: each started node reports ``inference_count`` and ``average_inference_time_ms`` since its
process started; their product is the time its allocations spent inferring. The difference between the two
snapshots, summed over the nodes, is the busy allocation-seconds of the window (a node that restarted in
between, whose count went down, counts from zero).

The busy time above the baseline is the deployment's busy time in the share of the allocations above the
baseline (``busy x above / allocations``): Elasticsearch spreads the inference requests of a deployment over all
its allocations, so each allocation does the same share of the work. The whole deployment's busy time is in the
result as well. Pure Python.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from airflow_esml.core.status import DeploymentStatus

#: a node's cumulative work: (inference_count, average_inference_time_ms)
NodeWork = tuple[int, float]

#: the names under which the figures go to Airflow's ``Stats`` (StatsD / OpenTelemetry), tagged by
#: ``deployment_id``; see docs/accounting.md
METRIC_NAMES: dict[str, str] = {
    "held_seconds": "esml.capacity.held_seconds",
    "allocation_seconds": "esml.capacity.allocation_seconds",
    "loading_allocation_seconds": "esml.capacity.loading_allocation_seconds",
    "busy_allocation_seconds": "esml.capacity.busy_allocation_seconds",
    "utilisation_percent": "esml.capacity.utilisation_percent",
}
#: a counter of closed windows, incremented once per window
WINDOWS_METRIC = "esml.capacity.windows"


def snapshot(status: DeploymentStatus) -> dict[str, NodeWork]:
    """Each started node's cumulative ``(inference_count, average_inference_time_ms)``."""
    work: dict[str, NodeWork] = {}
    for node in status.nodes:
        if node.routing_state == "started":
            work[node.node_id] = (int(node.inference_count), float(node.average_inference_time_ms or 0.0))
    return work


def busy_seconds(start: Mapping[str, NodeWork], end: Mapping[str, NodeWork]) -> float:
    """Allocation-seconds spent inferring between two snapshots, summed over the nodes of ``end``.

    A node absent from ``start``, or whose count went down (its process restarted), counts from zero. Nodes
    that left before ``end`` are not counted (their work since ``start`` is not visible any more).
    """
    total = 0.0
    for node_id, (count, average) in end.items():
        done = count * average
        before = start.get(node_id)
        if before is not None and before[0] <= count:
            done -= before[0] * before[1]
        total += max(0.0, done)
    return total / 1000.0


@dataclass(frozen=True)
class WindowStart:
    """What the task that opens a window records (in its XCom result, under ``accounting``).

    :param baseline: the allocations the deployment has when the provider holds nothing.
    :param allocations: the allocations held during the window.
    :param started_at: when the scale-up was sent (epoch seconds).
    :param ready_at: when the allocations were seen started (None when the opening task did not wait).
    :param snapshot: the deployment's work at ``started_at`` (:func:`snapshot`).
    """

    deployment_id: str
    baseline: int
    allocations: int
    started_at: float
    snapshot: dict[str, NodeWork] = field(default_factory=dict)
    ready_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["snapshot"] = {k: [v[0], v[1]] for k, v in self.snapshot.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowStart:
        return cls(
            deployment_id=str(data["deployment_id"]),
            baseline=int(data["baseline"]),
            allocations=int(data["allocations"]),
            started_at=float(data["started_at"]),
            snapshot={str(k): (int(v[0]), float(v[1])) for k, v in (data.get("snapshot") or {}).items()},
            ready_at=None if data.get("ready_at") is None else float(data["ready_at"]),
        )

    @property
    def above_baseline(self) -> int:
        return max(0, self.allocations - self.baseline)


def open_window(
    status: DeploymentStatus, *, baseline: int, allocations: int, now: float, ready_at: float | None = None
) -> WindowStart:
    """The record of a window opened at ``now`` on the deployment whose stats are ``status``."""
    return WindowStart(status.deployment_id, int(baseline), int(allocations), now, snapshot(status), ready_at)


@dataclass(frozen=True)
class CapacityUsage:
    """The figures of one closed window.

    :param held_seconds: how long the allocations above the baseline were held.
    :param allocation_seconds: allocations above the baseline x ``held_seconds``.
    :param loading_allocation_seconds: of those, the allocation-seconds before the allocations were started
        (None when no wait recorded when they were).
    :param busy_allocation_seconds: of those, the allocation-seconds spent inferring (the share of the
        allocations above the baseline in the deployment's busy time).
    :param deployment_busy_allocation_seconds: the whole deployment's busy allocation-seconds in the window.
    :param utilisation: ``busy_allocation_seconds / allocation_seconds`` (None when nothing was held).
    """

    deployment_id: str
    baseline: int
    allocations: int
    held_seconds: float
    allocation_seconds: float
    loading_allocation_seconds: float | None
    busy_allocation_seconds: float
    deployment_busy_allocation_seconds: float
    utilisation: float | None

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def metrics(self) -> dict[str, float]:
        """The figures sent to ``Stats``, by metric name (a figure that is not known is left out)."""
        values: dict[str, float | None] = {
            "held_seconds": self.held_seconds,
            "allocation_seconds": self.allocation_seconds,
            "loading_allocation_seconds": self.loading_allocation_seconds,
            "busy_allocation_seconds": self.busy_allocation_seconds,
            "utilisation_percent": None if self.utilisation is None else self.utilisation * 100,
        }
        return {METRIC_NAMES[k]: v for k, v in values.items() if v is not None}

    def describe(self) -> str:
        """``held 8 allocations for 5m12s above the baseline of 1 (36.4 allocation-min): 2.1 loading, 30.9
        busy (85%)``."""
        if self.allocations <= self.baseline:
            return (
                f"held nothing above the baseline of {self.baseline} ({self.allocations} allocations for "
                f"{duration(self.held_seconds)}; {self.deployment_busy_allocation_seconds / 60:.1f} "
                "allocation-min busy)"
            )
        unit, scale = ("allocation-min", 60.0) if self.allocation_seconds >= 60 else ("allocation-s", 1.0)
        loaded = self.loading_allocation_seconds
        loading = "? loading" if loaded is None else f"{loaded / scale:.1f} loading"
        share = "" if self.utilisation is None else f" ({self.utilisation:.0%})"
        return (
            f"held {self.allocations} allocations for {duration(self.held_seconds)} above the baseline of "
            f"{self.baseline} ({self.allocation_seconds / scale:.1f} {unit}): {loading}, "
            f"{self.busy_allocation_seconds / scale:.1f} busy{share}"
        )


def close_window(
    start: WindowStart,
    end: Mapping[str, NodeWork],
    ended_at: float,
    *,
    ready_at: float | None = None,
    share: tuple[float, float] | None = None,
) -> CapacityUsage:
    """The figures of the window ``start`` ended at ``ended_at`` with the deployment's work ``end``.

    :param ready_at: when the allocations were seen started, if the opening record does not say.
    :param share: for a lease's window, ``(share, span)`` as its lease document counted them
        (:meth:`~airflow_esml.leases.document.LeaseDoc.accrued`): its allocation-seconds are its share of what the
        deployment held above the baseline, and its busy time the deployment's busy time in the proportion
        ``share / span`` of the deployment's allocation-seconds while it was live. Without it the window held
        ``allocations - baseline`` alone for its whole duration.
    """
    held = max(0.0, ended_at - start.started_at)
    above = start.above_baseline
    ready = start.ready_at if start.ready_at is not None else ready_at
    busy = busy_seconds(start.snapshot, end)
    if share is None:
        allocation_seconds = above * held
        busy_above = min(allocation_seconds, busy * above / start.allocations) if above else 0.0
    else:
        allocation_seconds, span = max(0.0, share[0]), share[1]
        busy_above = min(allocation_seconds, busy * allocation_seconds / span) if span > 0 else 0.0
    loading = None if ready is None else min(allocation_seconds, above * min(held, max(0.0, ready - start.started_at)))
    return CapacityUsage(
        deployment_id=start.deployment_id,
        baseline=start.baseline,
        allocations=start.allocations,
        held_seconds=held,
        allocation_seconds=allocation_seconds,
        loading_allocation_seconds=loading,
        busy_allocation_seconds=busy_above,
        deployment_busy_allocation_seconds=busy,
        utilisation=busy_above / allocation_seconds if allocation_seconds > 0 else None,
    )


def duration(total_seconds: float) -> str:
    """``5m12s``, ``1h03m``, ``42s``."""
    whole = round(total_seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
