"""The ML nodes and the processors other deployments use, read from Elasticsearch's API responses, pure."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_esml.core.ml_nodes import MlNode, parse_ml_nodes, processors_used, scaling_possible, total_ml_processors

NODES = {
    "_nodes": {"total": 3},
    "nodes": {
        "id-data": {"name": "es-node-0", "roles": ["data", "master"], "attributes": {}},
        "id-b": {"name": "ml-b", "roles": ["ml"], "attributes": {"ml.allocated_processors": "4",
                                                                   "ml.machine_memory": "8589934592"}},
        "id-a": {"name": "ml-a", "roles": ["ml", "remote_cluster_client"],
                 "attributes": {"ml.allocated_processors": "2", "ml.allocated_processors_double": "1.5"}},
    },
}  # fmt: skip


def deployment(dep_id: str, target: int, routes: list[tuple[str, str, int | None]], **extra: Any) -> dict[str, Any]:
    nodes = []
    for node_id, state, allocations in routes:
        node: dict[str, Any] = {"node": {node_id: {"name": node_id}}, "routing_state": {"routing_state": state}}
        if allocations is not None:
            node["number_of_allocations"] = allocations
        nodes.append(node)
    stats = {"deployment_id": dep_id, "model_id": "m", "number_of_allocations": target, "threads_per_allocation": 1,
             "state": "started", "priority": "normal", "nodes": nodes, **extra}  # fmt: skip
    return {"model_id": "m", "deployment_stats": stats}


def test_parse_ml_nodes_keeps_ml_nodes_and_rounds_processors_up():
    assert parse_ml_nodes(NODES) == (
        MlNode("id-a", "ml-a", 2),  # 1.5 allocated processors round up to 2
        MlNode("id-b", "ml-b", 4, 8589934592),
    )


def test_processors_used_by_other_deployments():
    stats = {
        "trained_model_stats": [
            {"model_id": "undeployed"},
            deployment("me", 3, [("id-a", "started", 3)]),  # the deployment being scaled: not counted
            deployment("two-threads", 2, [("id-b", "started", 1)], threads_per_allocation=2),
            # 1 allocation started on id-a, 2 more reserved on its starting route on id-b
            deployment("loading", 3, [("id-a", "started", 1), ("id-b", "starting", None)]),
            deployment("low", 1, [("id-a", "started", 1)], priority="low"),  # planned separately
            deployment("stopping", 1, [("id-a", "started", 1)], state="stopping"),
            deployment("no-room", 4, [("id-b", "started", 1)]),  # 3 unplaced allocations use nothing
        ]
    }
    assert processors_used(stats, "me") == {"id-a": 1, "id-b": 2 + 2 + 1}


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"defaults": {"xpack.ml.max_lazy_ml_nodes": "0", "xpack.ml.max_ml_node_size": "0b"}}, False),
        ({"persistent": {"xpack.ml.max_lazy_ml_nodes": "3"}}, True),  # more lazy nodes than ML nodes
        ({"persistent": {"xpack": {"ml": {"max_lazy_ml_nodes": 2}}}}, False),  # = ML nodes: nothing to add
        ({"persistent": {"xpack.ml.max_ml_node_size": "16gb"}}, True),  # the smallest node (8gb) can grow
        ({"persistent": {"xpack.ml.max_ml_node_size": "8gb"}}, False),
        ({}, False),
    ],
)
def test_scaling_possible_follows_elasticsearch_rule(settings, expected):
    nodes = [MlNode("a", "a", 4, 8 * 2**30), MlNode("b", "b", 4, 16 * 2**30)]
    assert scaling_possible(settings, nodes) is expected


def test_total_ml_processors_from_ml_info():
    total = total_ml_processors({"limits": {"total_ml_processors": 8}})
    assert total == 8 and total_ml_processors({"limits": {}}) is None
