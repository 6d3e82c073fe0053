"""Rendering of the cluster model as Elasticsearch JSON: assignments, ``deployment_stats``, trained model
stats entries and node descriptions, with Elasticsearch's field presence rules (zero counters and
``allocation_status`` of a stopping deployment omitted; non-started nodes with four keys only).

Sources (elastic/elasticsearch): ``AssignmentStats.toXContent`` in
x-pack/plugin/core/src/main/java/org/elasticsearch/xpack/core/ml/inference/assignment/AssignmentStats.java
and how nodes are gathered in
x-pack/plugin/ml/src/main/java/org/elasticsearch/xpack/ml/action/TransportGetDeploymentStatsAction.java
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from airflow_esml.testing.cluster.inference import NodeCounters
from airflow_esml.testing.cluster.state import Deployment, MlNode, Model, Route
from airflow_esml.testing.cluster.values import epoch_millis, format_bytes, iso_millis
from airflow_esml.testing.protocol import EsVersion

ALL_ROUTES_FAILED = "All node routes are failed; see node route reason for details"
INDEX_VERSIONS = {"min_index_version": 7000099, "max_index_version": 8536000}


def node_description(node: MlNode, version: EsVersion) -> dict[str, Any]:
    """The ``node`` object inside ``deployment_stats.nodes[]``."""
    return {
        "name": node.name,
        "ephemeral_id": node.ephemeral_id,
        "transport_address": f"127.0.0.1:{node.port}",
        "external_id": node.name,
        "attributes": ml_attributes(node),
        "roles": ["ml", "remote_cluster_client"],
        "version": str(version),
        **INDEX_VERSIONS,
    }


def ml_attributes(node: MlNode) -> dict[str, str]:
    """The node attributes Elasticsearch sets on ML nodes."""
    return {
        "ml.machine_memory": str(node.memory_bytes),
        "ml.allocated_processors": str(node.processors),
        "ml.allocated_processors_double": f"{float(node.processors)}",
        "ml.max_jvm_size": str(node.memory_bytes // 4),
        "xpack.installed": "true",
    }


class Renderer:
    """Renders deployments at one instant.

    :param version: the simulated version.
    :param nodes: ML nodes by id.
    :param wall: converts a clock instant to ``time.time()``.
    :param now: the instant rendered.
    :param human: add the ``?human`` string fields.
    """

    def __init__(
        self,
        version: EsVersion,
        nodes: Mapping[str, MlNode],
        wall: Callable[[float], float],
        now: float,
        human: bool = False,
    ) -> None:
        self.version, self.nodes, self.wall, self.now, self.human = version, nodes, wall, now, human

    def _time(self, out: dict[str, Any], key: str, wall_seconds: float) -> None:
        if self.human:
            out[f"{key}_string"] = iso_millis(wall_seconds)
        out[key] = epoch_millis(wall_seconds)

    def assignment(self, dep: Deployment) -> dict[str, Any]:
        """The ``TrainedModelAssignment`` of start/update responses."""
        params: dict[str, Any] = {
            "model_id": dep.model_id,
            "deployment_id": dep.deployment_id,
            "model_bytes": dep.model_bytes,
            "threads_per_allocation": dep.threads,
            "number_of_allocations": dep.target,
            "queue_capacity": dep.queue_capacity,
            "cache_size": dep.cache_size,
            "priority": dep.priority,
            "per_deployment_memory_bytes": 0,
            "per_allocation_memory_bytes": 0,
        }
        routing = {
            node_id: {
                "current_allocations": r.current,
                "target_allocations": r.target,
                "routing_state": r.state,
                "reason": r.reason,
            }
            for node_id, r in sorted(dep.routes.items())
        }
        out: dict[str, Any] = {"task_parameters": params, "routing_table": routing}
        out["assignment_state"] = dep.stored_state()
        if dep.reason is not None:
            out["reason"] = dep.reason
        out["start_time"] = iso_millis(dep.start_wall)
        out["max_assigned_allocations"] = dep.max_assigned
        if self.version.at_least("8.15"):
            out["adaptive_allocations"] = dep.adaptive.to_dict() if dep.adaptive is not None else None
        return out

    def deployment_stats(self, dep: Deployment) -> dict[str, Any]:
        """``deployment_stats`` exactly as the stats API returns it."""
        dep.engine.complete_until(self.now)
        nodes = [self._node_stats(dep, node_id, route) for node_id, route in sorted(dep.routes.items())]
        counters = [
            dep.engine.nodes[n] for n, r in dep.routes.items() if r.state == "started" and n in dep.engine.nodes
        ]
        out: dict[str, Any] = {
            "deployment_id": dep.deployment_id,
            "model_id": dep.model_id,
            "threads_per_allocation": dep.threads,
            "number_of_allocations": dep.target,
        }
        if dep.adaptive is not None:
            out["adaptive_allocations"] = dep.adaptive.to_dict()
        out["queue_capacity"] = dep.queue_capacity
        state = dep.computed_state()
        out["state"] = state
        reason = dep.reason
        if state == "failed" and reason is None:
            reason = ALL_ROUTES_FAILED
        if reason is not None:
            out["reason"] = reason
        if dep.state != "stopping":
            out["allocation_status"] = {
                "allocation_count": dep.allocation_count(),
                "target_allocation_count": dep.target,
                "state": dep.allocation_state(),
            }
        out["cache_size"] = format_bytes(dep.cache_bytes)
        out["priority"] = dep.priority
        self._time(out, "start_time", dep.start_wall)
        for key, value in (
            ("error_count", sum(c.errors for c in counters)),
            ("rejected_execution_count", sum(c.rejected for c in counters)),
            ("timeout_count", sum(c.timeouts for c in counters)),
            ("inference_count", sum(c.inference_count for c in counters)),
        ):
            if value > 0:
                out[key] = value
        out["peak_throughput_per_minute"] = sum(n["peak_throughput_per_minute"] for n in nodes)
        out["nodes"] = nodes
        return out

    def _node_stats(self, dep: Deployment, node_id: str, route: Route) -> dict[str, Any]:
        out: dict[str, Any] = {}
        node = self.nodes.get(node_id)
        if node is not None:
            out["node"] = {node_id: node_description(node, self.version)}
        counters = dep.engine.nodes.get(node_id)
        if route.state != "started" or counters is None:
            out["routing_state"] = {"routing_state": route.state, "reason": route.reason}
            out["peak_throughput_per_minute"] = 0
            out["throughput_last_minute"] = 0
            return out
        counters.trim(self.now)
        out["routing_state"] = {"routing_state": "started"}
        out["inference_count"] = counters.inference_count
        if counters.inference_count > 0:
            average = round(counters.total_ms / counters.inference_count, 3)
            out["average_inference_time_ms"] = average
            out["average_inference_time_ms_excluding_cache_hits"] = average  # hits take the service time too
        out["inference_cache_hit_count"] = counters.cache_hits
        if counters.last_access is not None:
            self._time(out, "last_access", self.wall(counters.last_access))
        out["number_of_pending_requests"] = len(counters.waiting)
        self._counts(out, counters)
        self._time(out, "start_time", self.wall(route.started_at if route.started_at is not None else self.now))
        out["threads_per_allocation"] = dep.threads
        out["number_of_allocations"] = route.current
        out["peak_throughput_per_minute"] = counters.peak
        out["throughput_last_minute"] = len(counters.window)
        if counters.window:
            out["average_inference_time_ms_last_minute"] = round(
                sum(ms for _, ms in counters.window) / len(counters.window), 3
            )
        out["inference_cache_hit_count_last_minute"] = len(counters.hit_window)
        return out

    @staticmethod
    def _counts(out: dict[str, Any], counters: NodeCounters) -> None:
        for key, value in (
            ("error_count", counters.errors),
            ("rejected_execution_count", counters.rejected),
            ("timeout_count", counters.timeouts),
        ):
            if value > 0:
                out[key] = value

    def model_entry(self, model: Model, dep: Deployment | None) -> dict[str, Any]:
        """One ``trained_model_stats`` entry (one per deployment; one without deployment otherwise)."""
        size: dict[str, Any] = {}
        for key, value in (("model_size", model.model_bytes), ("required_native_memory", model.required_memory_bytes)):
            if self.human:
                size[key] = format_bytes(value)
            size[f"{key}_bytes"] = value
        out: dict[str, Any] = {"model_id": model.model_id, "model_size_stats": size, "pipeline_count": 0}
        if dep is not None:
            stats = self.deployment_stats(dep)
            failures = sum(stats.get(k, 0) for k in ("error_count", "timeout_count", "rejected_execution_count"))
            out["inference_stats"] = self._inference_stats(failures, stats.get("inference_count", 0))
            out["deployment_stats"] = stats
        elif model.model_type != "pytorch":
            out["inference_stats"] = self._inference_stats(0, 0)
        return out

    def _inference_stats(self, failures: int, count: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "failure_count": failures,
            "inference_count": count,
            "cache_miss_count": 0,
            "missing_all_fields_count": 0,
        }
        self._time(out, "timestamp", self.wall(self.now))
        return out
