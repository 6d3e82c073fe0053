"""Typed views of Elasticsearch's trained-model deployment stats.

``GET _ml/trained_models/<id>/_stats`` answers with one ``trained_model_stats`` entry per deployment;
:func:`parse_deployment_status` turns the entry of one deployment into a :class:`DeploymentStatus`.
Pure Python: no Airflow or Elasticsearch imports, so DAG files can import it cheaply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote

#: deployment states from which no allocation starts any more
TERMINAL_STATES = frozenset({"failed", "stopping"})
#: characters of comma-joined ids in one ``GET _ml/trained_models/<ids>/_stats``: Elasticsearch refuses request
#: lines longer than ``http.max_initial_line_length`` (4 KB by default) with a 400 ``too_long_http_line_exception``
STATS_IDS_BUDGET = 3000
#: the largest page of the stats API (``from + size`` may not pass ``index.max_result_window``, 10,000)
STATS_MAX_PAGE = 10000


@dataclass(frozen=True)
class AdaptiveAllocations:
    """A deployment's ``adaptive_allocations`` settings."""

    enabled: bool
    min_number_of_allocations: int | None = None
    max_number_of_allocations: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AdaptiveAllocations:
        return cls(
            enabled=bool(data.get("enabled", False)),
            min_number_of_allocations=data.get("min_number_of_allocations"),
            max_number_of_allocations=data.get("max_number_of_allocations"),
        )

    def to_dict(self) -> dict[str, Any]:
        """All three settings; an unset bound is None, which Elasticsearch's update API reads as "clear it"."""
        return asdict(self)


@dataclass(frozen=True)
class NodeRoute:
    """One ML node's share of a deployment.

    :param allocations: allocations running on the node (only known while the route is ``started``).
    """

    node_id: str
    name: str
    routing_state: str
    reason: str | None = None
    allocations: int | None = None
    threads_per_allocation: int | None = None
    inference_count: int = 0
    pending_requests: int = 0
    throughput_last_minute: int = 0
    average_inference_time_ms: float | None = None

    def describe(self) -> str:
        """``node-a started x2``, ``node-b starting`` or ``node-c failed (reason)``."""
        text = f"{self.name} {self.routing_state}"
        if self.routing_state == "started" and self.allocations is not None:
            text += f" x{self.allocations}"
        if self.routing_state == "failed" and self.reason:
            text += f" ({self.reason})"
        return text


@dataclass(frozen=True)
class DeploymentStatus:
    """What the stats API says about one deployment.

    :param target_allocations: the requested ``number_of_allocations`` (Elasticsearch's target).
    :param started_allocations: ``allocation_status.allocation_count``: allocations on started routes.
    :param allocation_state: ``allocation_status.state`` (starting, started, fully_allocated), or None
        while the deployment is stopping.
    :param state: the deployment's state: starting, started, stopping or failed.
    """

    deployment_id: str
    model_id: str
    state: str | None
    target_allocations: int
    started_allocations: int
    allocation_state: str | None
    threads_per_allocation: int = 1
    priority: str = "normal"
    queue_capacity: int | None = None
    adaptive_allocations: AdaptiveAllocations | None = None
    reason: str | None = None
    nodes: tuple[NodeRoute, ...] = field(default_factory=tuple)
    inference_count: int = 0
    peak_throughput_per_minute: int = 0

    @property
    def adaptive_enabled(self) -> bool:
        return self.adaptive_allocations is not None and self.adaptive_allocations.enabled

    @property
    def serving(self) -> bool:
        """At least one allocation is started. ``allocation_status.state`` cannot say so: a deployment scaled to zero
        reports ``fully_allocated`` (0 of 0; elastic/elasticsearch PR #114570, ``AllocationStatus.calculateState``)."""
        return self.started_allocations >= 1

    @property
    def scaled_to_zero(self) -> bool:
        """Started, with no allocation targeted nor running (adaptive allocations with minimum 0 after idle time)."""
        return self.state == "started" and self.target_allocations == 0 and self.started_allocations == 0

    @property
    def failed_nodes(self) -> tuple[NodeRoute, ...]:
        return tuple(n for n in self.nodes if n.routing_state == "failed")

    @property
    def throughput_last_minute(self) -> int:
        return sum(n.throughput_last_minute for n in self.nodes)

    @property
    def pending_requests(self) -> int:
        return sum(n.pending_requests for n in self.nodes)

    @property
    def average_inference_time_ms(self) -> float | None:
        """Mean inference time over the started nodes, weighted by their inference counts."""
        timed = [n for n in self.nodes if n.average_inference_time_ms is not None and n.inference_count]
        total = sum(n.inference_count for n in timed)
        if not total:
            return None
        return sum((n.average_inference_time_ms or 0.0) * n.inference_count for n in timed) / total

    def describe_nodes(self) -> str:
        return ", ".join(n.describe() for n in self.nodes) or "no nodes"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (for XCom and trigger events); :meth:`from_dict` reads it back."""
        data = asdict(self)
        data["nodes"] = [asdict(n) for n in self.nodes]
        data["adaptive_allocations"] = self.adaptive_allocations.to_dict() if self.adaptive_allocations else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeploymentStatus:
        values = dict(data)
        values["nodes"] = tuple(NodeRoute(**n) for n in values.get("nodes", ()))
        adaptive = values.get("adaptive_allocations")
        values["adaptive_allocations"] = AdaptiveAllocations.from_dict(adaptive) if adaptive else None
        return cls(**values)


def parse_deployment_status(entry: Mapping[str, Any]) -> DeploymentStatus:
    """Build a :class:`DeploymentStatus` from one ``trained_model_stats`` entry that has ``deployment_stats``."""
    stats = entry["deployment_stats"]
    allocation = stats.get("allocation_status") or {}
    adaptive = stats.get("adaptive_allocations")
    target = stats.get("number_of_allocations", allocation.get("target_allocation_count", 0))
    return DeploymentStatus(
        deployment_id=stats.get("deployment_id", stats["model_id"]),
        model_id=stats["model_id"],
        state=stats.get("state"),
        target_allocations=int(target),
        started_allocations=int(allocation.get("allocation_count", 0)),
        allocation_state=allocation.get("state"),
        threads_per_allocation=int(stats.get("threads_per_allocation", 1)),
        priority=stats.get("priority", "normal"),
        queue_capacity=stats.get("queue_capacity"),
        adaptive_allocations=AdaptiveAllocations.from_dict(adaptive) if adaptive else None,
        reason=stats.get("reason"),
        nodes=tuple(_parse_node(n) for n in stats.get("nodes", ())),
        inference_count=int(stats.get("inference_count", 0)),
        peak_throughput_per_minute=int(stats.get("peak_throughput_per_minute", 0)),
    )


def _parse_node(node: Mapping[str, Any]) -> NodeRoute:
    node_info: Mapping[str, Any] = node.get("node") or {}
    node_id, details = next(iter(node_info.items()), ("unknown", None))
    details = details or {}
    routing = node.get("routing_state") or {}
    return NodeRoute(
        node_id=node_id,
        name=details.get("name", node_id),
        routing_state=routing.get("routing_state", "unknown"),
        reason=routing.get("reason") or None,
        allocations=node.get("number_of_allocations"),
        threads_per_allocation=node.get("threads_per_allocation"),
        inference_count=int(node.get("inference_count", 0)),
        pending_requests=int(node.get("number_of_pending_requests", 0)),
        throughput_last_minute=int(node.get("throughput_last_minute", 0)),
        average_inference_time_ms=node.get("average_inference_time_ms"),
    )


def fits_one_stats_request(ids: Sequence[str], budget: int = STATS_IDS_BUDGET) -> bool:
    """Whether ``ids``, comma-joined and URL-encoded, fit one ``GET _ml/trained_models/<ids>/_stats`` request line
    under Elasticsearch's ``http.max_initial_line_length``; when they do not, one ``_all`` request (a cluster
    holds at most a few hundred deployments) costs the cluster less than several requests."""
    return sum(len(quote(i, safe="")) + 1 for i in ids) - 1 <= budget
