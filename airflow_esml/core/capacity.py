"""How many allocations of a deployment the ML nodes can hold, from Elasticsearch's own API responses.

Pure Python. The inputs are the bodies of ``GET _nodes`` (each ML node's ``ml.allocated_processors``
attribute), ``GET _ml/info`` (``limits.total_ml_processors``, used when ``_nodes`` is not readable),
``GET _ml/trained_models/_stats`` (what every other deployment uses on each node) and, for recognising
autoscaling, ``GET _cluster/settings?include_defaults=true&flat_settings=true``.

The rule is Elasticsearch's (``TrainedModelAssignmentRebalancer`` in elastic/elasticsearch,
x-pack/plugin/ml/src/main/java/org/elasticsearch/xpack/ml/inference/assignment/): on each ML node, the sum
of allocations x threads per allocation of normal-priority deployments never exceeds the node's allocated
processors. Low-priority deployments are planned separately and are not counted. Memory is not checked
here; Elasticsearch still refuses (429) an update whose model does not fit in memory.

When the check cannot be made (a monitoring API answered 403, 404 or 410: a key without ``monitor``, a proxy,
Serverless) or is not needed (a Serverless project autoscales), the hook hands :func:`apply_capacity` a
:class:`CapacityUnchecked` with the reason instead of a report: the update goes on as asked, and the decision
says that nothing was checked and why. A batch is never blocked because a read-only API was refused.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from airflow_esml.core.plan import UpdatePlan
from airflow_esml.exceptions import InsufficientCapacityError

#: statuses of a monitoring API (``_nodes``, ``_ml/info``, ``_cluster/settings``) that mean "cannot check
#: here" rather than "something is wrong": 403 (the key lacks ``monitor``), 404 (a proxy does not pass the
#: API on) and 410 (``api_not_available_exception``: Serverless)
UNCHECKABLE_STATUSES = frozenset({403, 404, 410})


@dataclass(frozen=True)
class MlNode:
    """An ML node and its allocated processors (``ml.allocated_processors``, rounded up)."""

    node_id: str
    name: str
    processors: int
    machine_memory: int | None = None


def parse_ml_nodes(body: Mapping[str, Any]) -> tuple[MlNode, ...]:
    """The ML nodes of a ``GET _nodes`` response (nodes with the ``ml`` role), sorted by name."""
    found = []
    for node_id, node in (body.get("nodes") or {}).items():
        if "ml" not in (node.get("roles") or ()):
            continue
        attributes = node.get("attributes") or {}
        raw = attributes.get("ml.allocated_processors_double", attributes.get("ml.allocated_processors"))
        if raw is None:
            raw = (node.get("os") or {}).get("allocated_processors", 0)
        memory = attributes.get("ml.machine_memory")
        found.append(
            MlNode(
                node_id=node_id,
                name=str(node.get("name", node_id)),
                processors=math.ceil(float(raw) - 1e-9),
                machine_memory=int(memory) if memory not in (None, "") else None,
            )
        )
    return tuple(sorted(found, key=lambda n: n.name))


def total_ml_processors(info: Mapping[str, Any]) -> int | None:
    """``limits.total_ml_processors`` of a ``GET _ml/info`` response, if present."""
    value = (info.get("limits") or {}).get("total_ml_processors")
    return None if value is None else int(value)


def scaling_possible(settings: Mapping[str, Any], ml_nodes: Iterable[MlNode]) -> bool:
    """Whether Elasticsearch would add ML nodes for allocations that do not fit (ML autoscaling).

    Elasticsearch's own rule (``TrainedModelAssignmentClusterService.isScalingPossible`` in
    elastic/elasticsearch, x-pack/plugin/ml/src/main/java/org/elasticsearch/xpack/ml/inference/assignment/):
    ``xpack.ml.max_lazy_ml_nodes`` is larger than the number of
    ML nodes, or the smallest ML node is smaller than ``xpack.ml.max_ml_node_size``.

    :param settings: ``GET _cluster/settings?include_defaults=true&flat_settings=true`` (its ``persistent``,
        ``transient`` and ``defaults`` sections are merged, the first one set winning).
    :param ml_nodes: the cluster's ML nodes.
    """
    merged: dict[str, Any] = {}
    for section in ("defaults", "persistent", "transient"):
        merged.update(_flatten(settings.get(section) or {}))
    nodes = list(ml_nodes)
    lazy = int(merged.get("xpack.ml.max_lazy_ml_nodes", 0) or 0)
    if lazy > len(nodes):
        return True
    max_size = _bytes(merged.get("xpack.ml.max_ml_node_size", "0b"))
    memories = [n.machine_memory for n in nodes if n.machine_memory is not None]
    return max_size > 0 and (not nodes or not memories or min(memories) < max_size)


def _flatten(section: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in section.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


_UNITS = {"pb": 1024**5, "tb": 1024**4, "gb": 1024**3, "mb": 1024**2, "kb": 1024, "b": 1}


def _bytes(value: Any) -> int:
    text = str(value).strip().lower()
    for unit, size in _UNITS.items():
        if text.endswith(unit) and text[: -len(unit)].strip():
            return int(float(text[: -len(unit)]) * size)
    try:
        return int(float(text))
    except ValueError:
        return 0


def processors_used(stats: Mapping[str, Any], exclude_deployment_id: str) -> dict[str, int]:
    """Processors that normal-priority deployments other than ``exclude_deployment_id`` use, per node id.

    From a ``GET _ml/trained_models/_stats`` response: each started route counts its own allocations x
    threads; allocations of a deployment that are not on a started route (its target minus what started
    routes run) are spread over its ``starting`` routes, rounding up, since Elasticsearch has already
    reserved them there. Allocations with no route at all use nothing.
    """
    used: dict[str, int] = {}
    for entry in stats.get("trained_model_stats") or ():
        deployment = entry.get("deployment_stats")
        if not deployment or deployment.get("priority", "normal") == "low":
            continue
        if deployment.get("deployment_id", deployment.get("model_id")) == exclude_deployment_id:
            continue
        if deployment.get("state") == "stopping":
            continue
        threads = int(deployment.get("threads_per_allocation", 1))
        started = 0
        starting: list[str] = []
        for node in deployment.get("nodes") or ():
            node_id = next(iter(node.get("node") or {}), None)
            if node_id is None:
                continue
            state = (node.get("routing_state") or {}).get("routing_state")
            if state == "started":
                allocations = int(node.get("number_of_allocations", 0))
                node_threads = int(node.get("threads_per_allocation", threads))
                used[node_id] = used.get(node_id, 0) + allocations * node_threads
                started += allocations
            elif state == "starting":
                starting.append(node_id)
        unplaced = max(0, int(deployment.get("number_of_allocations", 0)) - started)
        if unplaced and starting:
            share = math.ceil(unplaced / len(starting))
            for node_id in starting:
                used[node_id] = used.get(node_id, 0) + share * threads
    return used


@dataclass(frozen=True)
class NodeCapacity:
    """One ML node seen from the deployment being scaled.

    :param processors: the node's allocated processors.
    :param used_by_others: processors that other deployments use there.
    :param fits: allocations of the deployment the node can hold.
    """

    name: str
    processors: int
    used_by_others: int
    fits: int

    @property
    def free(self) -> int:
        return max(0, self.processors - self.used_by_others)


@dataclass(frozen=True)
class CapacityReport:
    """How many allocations of one deployment the ML nodes can hold.

    :param deployment_id: the deployment being scaled.
    :param threads_per_allocation: its threads per allocation.
    :param nodes: per ML node figures (one pseudo-node ``all ML nodes`` when only ``_ml/info`` was readable).
    :param autoscaling: Elasticsearch adds ML nodes for allocations that do not fit.
    """

    deployment_id: str
    threads_per_allocation: int
    nodes: tuple[NodeCapacity, ...]
    autoscaling: bool = False

    @property
    def max_allocations(self) -> int:
        return sum(n.fits for n in self.nodes)

    def describe(self) -> str:
        """``ml-node-1: 4 allocated processors, 3 used by other deployments, 1 free -> 1 allocation; ...``."""
        if not self.nodes:
            return "no ML nodes"
        parts = [
            f"{n.name}: {n.processors} allocated processors, {n.used_by_others} used by other deployments, "
            f"{n.free} free -> {n.fits}"
            for n in self.nodes
        ]
        return "; ".join(parts) + f"; each allocation needs {self.threads_per_allocation} processor(s)"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["max_allocations"] = self.max_allocations
        return data


def build_report(
    deployment_id: str,
    threads_per_allocation: int,
    ml_nodes: Iterable[MlNode],
    used: Mapping[str, int],
    *,
    autoscaling: bool = False,
) -> CapacityReport:
    """The per-node capacity for a deployment whose allocations need ``threads_per_allocation`` processors each."""
    threads = max(1, threads_per_allocation)
    nodes = tuple(
        NodeCapacity(
            n.name, n.processors, used.get(n.node_id, 0), max(0, n.processors - used.get(n.node_id, 0)) // threads
        )
        for n in ml_nodes
    )
    return CapacityReport(deployment_id, threads, nodes, autoscaling)


def pooled_report(
    deployment_id: str, threads_per_allocation: int, total_processors: int, used_total: int, *, autoscaling: bool
) -> CapacityReport:
    """A report from ``_ml/info``'s ``total_ml_processors`` when the per-node view is not readable (optimistic:
    it ignores how the free processors are split over nodes)."""
    threads = max(1, threads_per_allocation)
    free = max(0, total_processors - used_total)
    node = NodeCapacity("all ML nodes", total_processors, used_total, free // threads)
    return CapacityReport(deployment_id, threads, (node,), autoscaling)


@dataclass(frozen=True)
class CapacityUnchecked:
    """The capacity of the ML nodes was not checked; the update is sent as asked.

    :param deployment_id: the deployment being scaled.
    :param reason: why, in words a log reader understands: which API answered what (``nodes info (GET
        _nodes): 403 ...``), or why no check is needed (``Serverless project autoscales``).
    :param warn: whether this deserves a warning (a monitoring API was refused) or is expected (Serverless).
    """

    deployment_id: str
    reason: str
    warn: bool = True

    def describe(self) -> str:
        return f"{self.deployment_id}: could not check the ML nodes' capacity ({self.reason}); scaling as requested"


@dataclass(frozen=True)
class CapacityDecision:
    """What to ask for after the capacity check.

    :param requested: the count asked for.
    :param allowed: the count to set (below ``requested`` only under ``fit``).
    :param message: what the check found, for the log.
    :param checked: False when the check could not be made (see :class:`CapacityUnchecked`).
    :param reason: why it was not checked.
    :param warn: log ``message`` as a warning.
    """

    requested: int
    allowed: int
    message: str
    report: CapacityReport | None = None
    checked: bool = True
    reason: str | None = None
    warn: bool = False

    @property
    def capped(self) -> bool:
        return self.allowed < self.requested

    @property
    def noteworthy(self) -> bool:
        """Whether the XCom result should carry it: the request was cut, or nothing could be checked."""
        return self.capped or not self.checked

    def to_dict(self) -> dict[str, Any]:
        if not self.checked:
            return {"checked": False, "reason": self.reason}
        return {
            "checked": True,
            "requested": self.requested,
            "allowed": self.allowed,
            "capped": self.capped,
            "message": self.message,
            "max_allocations": self.report.max_allocations if self.report else None,
            "autoscaling": self.report.autoscaling if self.report else None,
        }


def decide(report: CapacityReport, current_target: int, requested: int, policy: str) -> CapacityDecision:
    """Apply ``policy`` to a scale-up from ``current_target`` to ``requested``.

    :raises InsufficientCapacityError: the allocations do not fit, the cluster does not autoscale and
        ``policy`` is ``"fail"``.
    """
    name = report.deployment_id
    fits = report.max_allocations
    if requested <= current_target or policy == "off":
        return CapacityDecision(requested, requested, f"{name}: no capacity check needed", report)
    if report.autoscaling:
        return CapacityDecision(
            requested,
            requested,
            f"{name}: {requested} allocations requested, {fits} fit on the current ML nodes; the cluster "
            "autoscales, so Elasticsearch adds ML nodes for the rest",
            report,
        )
    if requested <= fits:
        return CapacityDecision(
            requested, requested, f"{name}: {requested} allocations fit (room for {fits}): {report.describe()}", report
        )
    why = (
        f"{name}: {requested} allocations do not fit: the ML nodes can hold {fits} allocations of this deployment "
        f"({report.describe()})"
    )
    if policy == "fail":
        raise InsufficientCapacityError(
            f"{why}. Nothing was changed. Ask for at most {fits}, add ML processors, or pass capacity_policy='fit' "
            "to scale to what fits"
        )
    allowed = max(current_target, fits)
    tail = (
        f"scaling to {allowed} instead (capacity_policy='fit')"
        if allowed > current_target
        else f"staying at {current_target} (capacity_policy='fit': nothing more fits)"
    )
    return CapacityDecision(requested, allowed, f"{why}; {tail}", report)


def check_adaptive_max(report: CapacityReport, maximum: int | None, policy: str) -> int | None:
    """The adaptive ``max_number_of_allocations`` to set, given what the ML nodes can hold.

    A maximum beyond capacity on a cluster that does not autoscale can never be reached (Elasticsearch
    refuses the scaler's larger updates): ``fail`` refuses it, ``fit`` lowers it to capacity.
    """
    if maximum is None or policy == "off" or report.autoscaling or maximum <= report.max_allocations:
        return maximum
    message = (
        f"adaptive_allocations['max_number_of_allocations']={maximum} exceeds what the ML nodes can hold for "
        f"{report.deployment_id}: {report.max_allocations} allocations ({report.describe()}), and the cluster "
        "does not autoscale"
    )
    if policy == "fail":
        raise InsufficientCapacityError(f"{message}. Nothing was changed; pass capacity_policy='fit' to lower it")
    return max(1, report.max_allocations)


def needs_check(plan: UpdatePlan, policy: str) -> bool:
    """Whether ``plan`` asks for more than the deployment has now (so the ML nodes' capacity matters)."""
    if policy == "off" or plan.body is None:
        return False
    number = plan.body.get("number_of_allocations")
    if number is not None:
        return int(number) > plan.current.target_allocations
    adaptive = plan.body.get("adaptive_allocations") or {}
    return bool(adaptive.get("enabled")) and (
        (adaptive.get("min_number_of_allocations") or 0) > plan.current.target_allocations
        or adaptive.get("max_number_of_allocations") is not None
    )


def requested_allocations(plan: UpdatePlan) -> int:
    """The allocations ``plan`` asks for: its count, or its adaptive maximum (else minimum)."""
    body = plan.body or {}
    if body.get("number_of_allocations") is not None:
        return int(body["number_of_allocations"])
    adaptive = body.get("adaptive_allocations") or {}
    high = adaptive.get("max_number_of_allocations")
    return int(high if high is not None else adaptive.get("min_number_of_allocations") or 0)


def unchecked(plan: UpdatePlan, why: CapacityUnchecked) -> CapacityDecision:
    """The decision when the capacity could not be checked: ``plan`` goes on unchanged, and says why."""
    requested = requested_allocations(plan)
    return CapacityDecision(requested, requested, why.describe(), None, checked=False, reason=why.reason, warn=why.warn)


def apply_capacity(
    plan: UpdatePlan, report: CapacityReport | CapacityUnchecked, policy: str
) -> tuple[UpdatePlan, CapacityDecision]:
    """Check ``plan`` against ``report`` under ``policy``; under ``fit`` the returned plan asks for what fits.

    A fixed count is checked as a scale-up; adaptive settings have their minimum checked the same way
    (Elasticsearch places the minimum at once) and their maximum by :func:`check_adaptive_max`. With a
    :class:`CapacityUnchecked` instead of a report, ``plan`` is returned unchanged with an unchecked decision.

    :raises InsufficientCapacityError: it does not fit and ``policy`` is ``"fail"``.
    """
    if isinstance(report, CapacityUnchecked):
        return plan, unchecked(plan, report)
    body = dict(plan.body or {})
    current = plan.current.target_allocations
    if "number_of_allocations" in body:
        decision = decide(report, current, int(body["number_of_allocations"]), policy)
        body["number_of_allocations"] = decision.allowed
        unchanged = decision.allowed == current and set(body) == {"number_of_allocations"}
        return UpdatePlan(plan.current, None if unchanged else body), decision
    adaptive = dict(body["adaptive_allocations"])
    notes: list[str] = []
    requested = allowed = int(adaptive.get("min_number_of_allocations") or 0)
    if requested > current:
        found = decide(report, current, requested, policy)
        adaptive["min_number_of_allocations"] = allowed = found.allowed
        notes.append(found.message)
    high = adaptive.get("max_number_of_allocations")
    new_high = check_adaptive_max(report, high, policy)
    if high is not None and new_high is not None and new_high != high:
        adaptive["max_number_of_allocations"] = new_high
        adaptive["min_number_of_allocations"] = min(int(adaptive.get("min_number_of_allocations") or 0), new_high)
        notes.append(
            f"{report.deployment_id}: adaptive max_number_of_allocations lowered from {high} to {new_high}, what "
            f"the ML nodes can hold ({report.describe()}) (capacity_policy='fit')"
        )
        requested, allowed = int(high), new_high
    message = (
        "; ".join(notes) or f"{report.deployment_id}: the adaptive settings fit (room for {report.max_allocations})"
    )
    return UpdatePlan(plan.current, {**body, "adaptive_allocations": adaptive}), CapacityDecision(
        requested, allowed, message, report
    )
