from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from airflow_esml.core.status import AdaptiveAllocations, DeploymentStatus, parse_deployment_status

EXAMPLE = json.loads((Path(__file__).parents[1] / "data" / "stats_scaling_1_to_3.json").read_text())


def entry(**stats_changes):
    e = copy.deepcopy(EXAMPLE["trained_model_stats"][0])
    e["deployment_stats"].update(stats_changes)
    return e


def test_parses_the_fact_sheet_example():
    status = parse_deployment_status(entry())
    assert (status.deployment_id, status.model_id) == ("my-e5-batch", "my-e5")
    assert status.target_allocations == 3
    assert status.started_allocations == 2
    assert status.allocation_state == "started"
    assert status.state == "started"
    assert [(n.name, n.routing_state, n.allocations) for n in status.nodes] == [
        ("instance-0000000007", "started", 2),
        ("instance-0000000008", "starting", None),
    ]
    assert status.describe_nodes() == "instance-0000000007 started x2, instance-0000000008 starting"
    assert status.throughput_last_minute == 1180
    assert status.average_inference_time_ms == pytest.approx(24.7)


def test_missing_allocation_status_while_stopping():
    e = entry(state="stopping")
    del e["deployment_stats"]["allocation_status"]
    status = parse_deployment_status(e)
    assert status.started_allocations == 0 and status.allocation_state is None and status.target_allocations == 3


def test_failed_route_reason_and_adaptive_settings():
    e = entry(adaptive_allocations={"enabled": True, "min_number_of_allocations": 1, "max_number_of_allocations": 4})
    e["deployment_stats"]["nodes"][1]["routing_state"] = {"routing_state": "failed", "reason": "out of memory"}
    status = parse_deployment_status(e)
    assert status.adaptive_enabled
    assert status.adaptive_allocations == AdaptiveAllocations(True, 1, 4)
    assert [n.name for n in status.failed_nodes] == ["instance-0000000008"]
    assert status.failed_nodes[0].describe() == "instance-0000000008 failed (out of memory)"


def test_dict_round_trip_is_json_safe():
    status = parse_deployment_status(entry(adaptive_allocations={"enabled": False}))
    data = json.loads(json.dumps(status.to_dict()))
    assert DeploymentStatus.from_dict(data) == status


def test_ids_that_do_not_fit_one_request_line_are_read_with_all():
    from airflow_esml.core.status import STATS_IDS_BUDGET, fits_one_stats_request

    assert fits_one_stats_request(["a", "b"]) and fits_one_stats_request(["x" * STATS_IDS_BUDGET])
    assert not fits_one_stats_request(["x" * (STATS_IDS_BUDGET + 1)])
    assert fits_one_stats_request([f"m{i:03d}" for i in range(600)])  # 600 x 4 characters + 599 commas = 2999
    assert not fits_one_stats_request([f"model-{i:04d}" for i in range(1000)])
    assert not fits_one_stats_request(["ü" * 600])  # URL-encoded, 3,600 characters
