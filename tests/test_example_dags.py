"""Every example DAG imports cleanly and runs end to end with ``dag.test()`` against the simulator."""

from __future__ import annotations

import importlib
from datetime import datetime, timezone
from pathlib import Path

import pytest

EXAMPLES = sorted(p.stem for p in (Path(__file__).parent.parent / "example_dags").glob("esml_*.py"))


def load(name: str):
    return importlib.import_module(f"example_dags.{name}").dag


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_dag_imports(name):
    dag = load(name)
    assert dag.dag_id == name
    assert dag.tags and "elasticsearch-ml" in dag.tags


def test_batch_inference_scales_up_infers_and_restores(airflow_db, sim):
    run = load("esml_batch_inference").test(run_conf={"allocations": 3, "documents": 120})
    assert run.state == "success"
    targets = [value for _, value in sim.audit.target_history("my-e5")]
    assert targets[-2:] == [3, 1]  # scaled up for the batch, back to the baseline after it
    inferred = sum(e.data.get("docs", 0) for e in sim.audit.events("inference"))
    assert inferred == 120


def test_batch_inference_restores_even_when_inference_fails(airflow_db, sim):
    sim.inject_fault(endpoint="infer", status=503, times=1000)
    run = load("esml_batch_inference").test(run_conf={"allocations": 3, "documents": 20})
    assert run.state == "failed"
    assert sim.cluster.target("my-e5") == 1
    assert max(value for _, value in sim.audit.target_history("my-e5")) == 3


@pytest.mark.parametrize(("hour", "expected"), [(9, 8), (18, 1)])
def test_business_hours_sets_the_count_for_the_time_of_day(airflow_db, sim, hour, expected):
    sim.cluster.update_deployment("my-e5", number_of_allocations=2)
    sim.cluster.wait_for("my-e5")
    logical = datetime(2026, 3, 2, hour - 1, 0, tzinfo=timezone.utc)  # Amsterdam is UTC+1 in March
    run = load("esml_business_hours").test(logical_date=logical)
    assert run.state == "success"
    assert sim.cluster.target("my-e5") == expected
    assert sim.cluster.deployment_stats("my-e5")["allocation_status"]["allocation_count"] >= expected
