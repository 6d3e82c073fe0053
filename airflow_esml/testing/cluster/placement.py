"""Placement of allocations on ML nodes and trimming on scale-down.

Normal-priority deployments never oversubscribe a node: Σ(allocations x threads) ≤ allocated
processors. A node that does not yet run a deployment must also have room for its memory
(240 MB + 2 x model bytes). Low-priority deployments (1 x 1) only need memory and are planned apart.

Sources (elastic/elasticsearch): the capacity rule and the shortfall reasons of
x-pack/plugin/ml/src/main/java/org/elasticsearch/xpack/ml/inference/assignment/TrainedModelAssignmentRebalancer.java
and, for scale-down, ``decreaseNumberOfAllocations`` of
x-pack/plugin/ml/src/main/java/org/elasticsearch/xpack/ml/inference/assignment/TrainedModelAssignmentClusterService.java
with x-pack/plugin/ml/src/main/java/org/elasticsearch/xpack/ml/inference/assignment/planning/AllocationReducer.java
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from airflow_esml.testing.cluster.state import Deployment, MlNode
from airflow_esml.testing.cluster.values import format_bytes

MAX_LOW_PRIORITY_PER_NODE = 100


@dataclass
class Plan:
    """Allocations to add per node id, and why some could not be placed.

    :param added: node id -> allocations to add.
    :param reason: the assignment reason for a shortfall (``None`` when all fit).
    """

    added: dict[str, int] = field(default_factory=dict)
    reason: str | None = None

    @property
    def total(self) -> int:
        return sum(self.added.values())


class Placer:
    """Computes free capacity and plans increases against the current deployments.

    :param nodes: the ML nodes by id.
    :param deployments: all deployments.
    :param memory_of: required native memory bytes of a deployment.
    """

    def __init__(
        self,
        nodes: Mapping[str, MlNode],
        deployments: Iterable[Deployment],
        memory_of: dict[str, int],
    ) -> None:
        self.nodes = nodes
        self.deployments = list(deployments)
        self.memory_of = memory_of

    def used_processors(self, node_id: str) -> int:
        return sum(
            d.routes[node_id].target * d.threads
            for d in self.deployments
            if d.priority == "normal" and node_id in d.routes
        )

    def used_memory(self, node_id: str) -> int:
        return sum(self.memory_of.get(d.deployment_id, 0) for d in self.deployments if node_id in d.routes)

    def healthy_nodes(self) -> list[MlNode]:
        return sorted((n for n in self.nodes.values() if n.failed_reason is None), key=lambda n: n.node_id)

    def plan(self, dep: Deployment, needed: int) -> Plan:
        """Where to put ``needed`` more allocations of ``dep`` (as many as fit)."""
        if needed <= 0:
            return Plan()
        if dep.priority == "low":
            return self._plan_low(dep)
        return self._plan_normal(dep, needed)

    def _plan_normal(self, dep: Deployment, needed: int) -> Plan:
        nodes = self.healthy_nodes()
        free = {n.node_id: n.processors - self.used_processors(n.node_id) for n in nodes}
        mem_free = {n.node_id: n.ml_memory_bytes - self.used_memory(n.node_id) for n in nodes}
        need_mem = self.memory_of.get(dep.deployment_id, 0)
        plan = Plan()
        for _ in range(needed):
            fits = [
                n.node_id
                for n in nodes
                if free[n.node_id] >= dep.threads
                and (n.node_id in dep.routes or n.node_id in plan.added or mem_free[n.node_id] >= need_mem)
            ]
            if not fits:
                break
            best = min(fits, key=lambda i: (-free[i], i not in dep.routes, i not in plan.added, i))
            if best not in dep.routes and best not in plan.added:
                mem_free[best] -= need_mem
            plan.added[best] = plan.added.get(best, 0) + 1
            free[best] -= dep.threads
        if plan.total < needed:
            plan.reason = self._shortfall_reason(dep, nodes, free, mem_free, plan)
        return plan

    def _plan_low(self, dep: Deployment) -> Plan:
        need_mem = self.memory_of.get(dep.deployment_id, 0)
        candidates = []
        for node in self.healthy_nodes():
            count = sum(1 for d in self.deployments if d.priority == "low" and node.node_id in d.routes)
            free_mem = node.ml_memory_bytes - self.used_memory(node.node_id)
            if node.node_id not in dep.routes and count < MAX_LOW_PRIORITY_PER_NODE and free_mem >= need_mem:
                candidates.append((count, node.node_id))
        if not candidates:
            nodes = self.healthy_nodes()
            mem_free = {n.node_id: n.ml_memory_bytes - self.used_memory(n.node_id) for n in nodes}
            return Plan(reason=self._shortfall_reason(dep, nodes, {}, mem_free, Plan()))
        return Plan(added={min(candidates)[1]: 1})

    def _shortfall_reason(
        self,
        dep: Deployment,
        nodes: list[MlNode],
        free: Mapping[str, int],
        mem_free: Mapping[str, int],
        plan: Plan,
    ) -> str:
        if not self.nodes:
            return "No ML nodes exist in the cluster"
        need_mem = self.memory_of.get(dep.deployment_id, 0)
        parts = []
        for node in nodes:
            prefix = f"Could not assign (more) allocations on node [{node.node_id}]. Reason: "
            hosts = node.node_id in dep.routes or node.node_id in plan.added
            if not hosts and mem_free[node.node_id] < need_mem:
                parts.append(
                    prefix + "This node has insufficient available memory. "
                    f"Available memory for ML [{format_bytes(node.ml_memory_bytes)}], "
                    f"free memory [{format_bytes(max(mem_free[node.node_id], 0))}], "
                    f"estimated memory required for this model [{format_bytes(need_mem)}]."
                )
            elif dep.priority == "normal":
                parts.append(
                    prefix + "This node has insufficient allocated processors. "
                    f"Available processors [{node.processors}], free processors [{max(free[node.node_id], 0)}], "
                    f"processors required for each allocation of this model [{dep.threads}]"
                )
        return "|".join(parts) if parts else "No ML nodes exist in the cluster"


def reduce_targets(targets: Mapping[str, int], wanted: int) -> dict[str, int]:
    """``AllocationReducer.reduceTo`` for a single zone: smallest routes first, emptying whole nodes.

    :param targets: node id -> target allocations now.
    :param wanted: the new total.
    :return: node id -> new target; nodes left out lose their route.
    """
    result = dict(targets)
    remaining = sum(result.values())
    while remaining > wanted and result:
        to_remove = remaining - wanted
        node_id, value = min(result.items(), key=lambda item: (item[1], item[0]))
        if value == 1 or value <= to_remove:
            del result[node_id]
            remaining -= value
        else:
            result[node_id] = value - 1
            remaining -= 1
    return result
