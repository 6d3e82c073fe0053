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


def test_batch_inference_scales_up_infers_and_restores(airflow_db, sim, tmp_path):
    run = load("esml_batch_inference").test(run_conf={"allocations": 3, "documents": 120, "output_dir": str(tmp_path)})
    assert run.state == "success"
    targets = [value for _, value in sim.audit.target_history("my-e5")]
    assert targets[-2:] == [3, 1]  # scaled up for the batch, back to the baseline after it
    inferred = sum(e.data.get("docs", 0) for e in sim.audit.events("inference"))
    assert inferred == 120
    (results,) = tmp_path.glob("*.jsonl")  # the results are kept: one file for the run, a line per document
    assert len(results.read_text().splitlines()) == 120
    assert run.get_task_instance("scaled_deployment.infer").xcom_pull(task_ids="scaled_deployment.infer")[
        "output_path"
    ] == str(results)


def test_batch_inference_restores_even_when_inference_fails(airflow_db, sim, tmp_path):
    sim.inject_fault(endpoint="infer", status=503, times=1000)
    run = load("esml_batch_inference").test(run_conf={"allocations": 3, "documents": 20, "output_dir": str(tmp_path)})
    assert run.state == "failed"
    assert sim.cluster.target("my-e5") == 1
    assert max(value for _, value in sim.audit.target_history("my-e5")) == 3


def test_business_hours_schedule_follows_the_hour_params():
    dag = load("esml_business_hours")
    timetable = dag.timetable
    if hasattr(timetable, "serialize"):  # Airflow 3.1: the core timetable
        crons = timetable.serialize()["expressions"]
    else:  # Airflow 3.2+: the task SDK's timetable
        crons = [part.expression for part in timetable.timetables]
    assert crons == ["30 7 * * 1,2,3,4,5", "0 18 * * 1,2,3,4,5"]
    assert dag.params["start_hour"] == 8 and dag.params["lead_minutes"] == 30


def test_business_hours_reserves_in_the_morning_and_ends_in_the_evening(airflow_db, sim):
    from airflow_esml.core.params import parse_window_spec

    window = parse_window_spec(8, 18, "Europe/Amsterdam", 30, "1-5").next_window(datetime.now(timezone.utc))
    dag = load("esml_business_hours")
    morning = dag.test(logical_date=window.reserve_at, run_conf={"business_allocations": 4})
    assert morning.state == "success"
    assert sim.cluster.target("my-e5") == 4
    assert sim.cluster.deployment_stats("my-e5")["allocation_status"]["allocation_count"] >= 4
    evening = dag.test(logical_date=window.end, run_conf={"business_allocations": 4})
    assert evening.state == "success"
    assert {ti.task_id: ti.state for ti in evening.get_task_instances()} == {
        "reserve": "skipped",
        "end_reservation": "success",
    }
    assert [value for _, value in sim.audit.target_history("my-e5")][-2:] == [4, 1]


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_dag_explains_itself_in_the_ui(name):
    from airflow_esml.testing.cli import EXAMPLES_COMMAND

    dag = load(name)
    assert dag.doc_md and dag.doc_md.lstrip().startswith("### ")
    for param_name, param in dag.params.items():
        assert param.description, f"{name}: param {param_name} has no description"
        assert f"`{param_name}`" in dag.doc_md, f"{name}: doc_md does not name param {param_name}"
    # how to run it against the simulator: the one command that serves every example, and this DAG
    assert EXAMPLES_COMMAND in dag.doc_md.replace(" \\\n    ", " ")
    assert f"airflow dags test {name}" in dag.doc_md


ADAPTIVE_ZERO = {"enabled": True, "min_number_of_allocations": 0, "max_number_of_allocations": 2}


def test_inference_endpoint_warms_up_infers_and_falls_back_to_its_adaptive_settings(airflow_db, sim, tmp_path):
    sim.cluster.update_deployment("my-e5", adaptive_allocations=ADAPTIVE_ZERO)
    conf = {"inference_id": "my-e5", "allocations": 3, "documents": 40, "output_dir": str(tmp_path)}
    run = load("esml_inference_endpoint").test(run_conf=conf)
    assert run.state == "success"
    changes = [e.data["new"] for e in sim.audit.events("adaptive_changed", deployment_id="my-e5")]
    # raised for the job (adaptive kept on, the maximum raised with the minimum), then put back exactly
    assert changes[-2:] == [{**ADAPTIVE_ZERO, "min_number_of_allocations": 3, "max_number_of_allocations": 3},
                            ADAPTIVE_ZERO]  # fmt: skip
    assert all(change["enabled"] for change in changes)
    assert sum(e.data.get("docs", 0) for e in sim.audit.events("inference")) == 40
    (results,) = tmp_path.glob("*.jsonl")
    assert len(results.read_text().splitlines()) == 40


@pytest.fixture
def serverless(monkeypatch):
    """A simulated Elastic Cloud Serverless project with ``my-e5`` deployed (adaptive: min 0, max 2)."""
    from airflow_esml.testing import Simulator
    from tests.conftest import CONN_ENV

    with Simulator(ml_nodes={"ml-node-1": 4, "ml-node-2": 4}, load_seconds=0.3, seed=3, serverless=True) as sim:
        sim.cluster.start_deployment("my-e5", adaptive_allocations=ADAPTIVE_ZERO, wait=True)
        monkeypatch.setenv(CONN_ENV, sim.connection_uri())
        yield sim


@pytest.mark.parametrize(
    ("name", "deployment_id"),
    [("esml_batch_inference", "my-e5"), ("esml_inference_endpoint", ".multilingual-e5-small-elasticsearch")],
)
def test_examples_run_on_serverless_with_no_410(airflow_db, serverless, tmp_path, name, deployment_id):
    conf = {"allocations": 3, "documents": 20, "output_dir": str(tmp_path)}
    if name == "esml_inference_endpoint":
        conf["inference_id"] = deployment_id
    default_endpoint = {"enabled": True, "min_number_of_allocations": 0, "max_number_of_allocations": 32}
    before = ADAPTIVE_ZERO if deployment_id == "my-e5" else default_endpoint
    run = load(name).test(run_conf=conf)
    assert run.state == "success"
    requests = serverless.audit.events("request")
    assert not [e.data for e in requests if e.data.get("status") in (400, 410)]
    changes = [e.data["new"] for e in serverless.audit.events("adaptive_changed", deployment_id=deployment_id)]
    assert changes and all(change["enabled"] for change in changes)  # only adaptive settings were sent
    assert changes[-2]["min_number_of_allocations"] == 3
    assert serverless.cluster.deployment_stats(deployment_id)["adaptive_allocations"] == before


def test_inference_endpoint_deploys_a_default_endpoint_and_restores_its_settings(airflow_db, sim, tmp_path):
    e5 = ".multilingual-e5-small-elasticsearch"
    run = load("esml_inference_endpoint").test(
        run_conf={"inference_id": e5, "allocations": 2, "documents": 20, "output_dir": str(tmp_path)}
    )
    assert run.state == "success"
    changes = [e.data["new"] for e in sim.audit.events("adaptive_changed", deployment_id=e5)]
    default = {"enabled": True, "min_number_of_allocations": 0, "max_number_of_allocations": 32}
    assert changes[-2:] == [{**default, "min_number_of_allocations": 2}, default]
    # on the newest 9.x the ML update API refuses endpoint deployments: every update went through _inference
    assert not [e for e in sim.audit.events("request", endpoint="update") if e.data.get("path", "").find(e5) >= 0]


def test_reindex_embeddings_embeds_inside_the_cluster_and_reports_capacity(airflow_db, sim):
    run = load("esml_reindex_embeddings").test(run_conf={"allocations": 3, "documents": 120})
    assert run.state == "success"
    targets = [value for _, value in sim.audit.target_history("my-e5")]
    assert targets[-2:] == [3, 1]  # scaled up for the batch, back to the baseline after it
    with sim.client() as es:
        es.indices.refresh(index="articles-embedded")
        assert es.count(index="articles-embedded")["count"] == 120
        assert "embedding" in es.get(index="articles-embedded", id="5")["_source"]
    assert not [e for e in sim.audit.events("inference") if e.data.get("via") != "ingest"]  # none via the worker
    embed = run.get_task_instance("scaled_deployment.embed").xcom_pull(task_ids="scaled_deployment.embed")
    assert embed["progress"]["created"] == 120 and embed["batch_plan"]["slices"] == 3
    released = run.get_task_instance("scaled_deployment.release").xcom_pull(task_ids="scaled_deployment.release")
    assert released["capacity_usage"]["allocations"] == 3 and released["capacity_usage"]["baseline"] == 1
    assert released["capacity_usage"]["deployment_busy_allocation_seconds"] > 0
