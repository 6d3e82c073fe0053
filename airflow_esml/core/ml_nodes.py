"""The ML nodes of a cluster and the processors its deployments use, from Elasticsearch's own API responses.

Pure Python. The inputs are the bodies of ``GET _nodes`` (each ML node's ``ml.allocated_processors``
attribute), ``GET _ml/info`` (``limits.total_ml_processors``, used when ``_nodes`` is not readable),
``GET _ml/trained_models/_stats`` (what every other deployment uses on each node) and, for recognising
autoscaling, ``GET _cluster/settings?include_defaults=true&flat_settings=true``. What they leave for a
deployment is decided in :mod:`airflow_esml.core.capacity`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


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
