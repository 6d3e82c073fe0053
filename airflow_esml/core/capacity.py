"""How many allocations of a deployment the ML nodes can hold, from Elasticsearch's own API responses.

Pure Python. The inputs are the ML nodes and the processors other deployments use, read from the bodies of
``GET _nodes``, ``GET _ml/info``, ``GET _ml/trained_models/_stats`` and ``GET _cluster/settings`` by
:mod:`airflow_esml.core.ml_nodes` (whose names are re-exported here).

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

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from airflow_esml.core.ml_nodes import (  # noqa: F401 (all but MlNode: re-exported for their old path)
    _UNITS,
    MlNode,
    _bytes,
    _flatten,
    parse_ml_nodes,
    processors_used,
    scaling_possible,
    total_ml_processors,
)
from airflow_esml.core.plan import UpdatePlan
from airflow_esml.exceptions import InsufficientCapacityError

#: statuses of a monitoring API (``_nodes``, ``_ml/info``, ``_cluster/settings``) that mean "cannot check
#: here" rather than "something is wrong": 403 (the key lacks ``monitor``), 404 (a proxy does not pass the
#: API on) and 410 (``api_not_available_exception``: Serverless)
UNCHECKABLE_STATUSES = frozenset({403, 404, 410})


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
        if not self.warn:  # expected: nothing to check
            return f"{self.deployment_id}: capacity not checked: {self.reason}; scaling as requested"
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
    raised_min = (adaptive.get("min_number_of_allocations") or 0) > plan.current.target_allocations
    return bool(adaptive.get("enabled")) and (
        raised_min or (not plan.raised and adaptive.get("max_number_of_allocations") is not None)
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
    if plan.raised:  # raise_min keeps the deployment's own maximum: only the raised minimum is a request
        high = None
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
    return UpdatePlan(plan.current, {**body, "adaptive_allocations": adaptive}, plan.raised), CapacityDecision(
        requested, allowed, message, report
    )


#: why the capacity check is skipped on Elastic Cloud Serverless (its ``_nodes``, ``_ml/info`` and
#: ``_cluster/settings`` answer 410 there, and the project adds ML resources itself)
SERVERLESS_REASON = "Serverless project autoscales"


def serverless_unchecked(deployment_id: str) -> CapacityUnchecked:
    """The capacity of a Serverless project's deployment: not checked, as expected (no warning)."""
    return CapacityUnchecked(deployment_id, SERVERLESS_REASON, warn=False)
