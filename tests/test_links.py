from __future__ import annotations

import json

from airflow_esml.links import TrainedModelsLink
from airflow_esml.operators.deployment import UpdateDeploymentOperator
from tests.conftest import CONN_ENV


class FakeTI:
    def __init__(self) -> None:
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value


def test_link_is_persisted_from_the_connections_kibana_url(sim, monkeypatch):
    port = int(sim.url.rsplit(":", 1)[1])
    conn = {"conn_type": "elasticsearch", "host": "127.0.0.1", "port": port, "schema": "http",
            "extra": {"kibana_url": "https://kibana.example.com/"}}  # fmt: skip
    monkeypatch.setenv(CONN_ENV, json.dumps(conn))
    ti = FakeTI()
    UpdateDeploymentOperator(task_id="scale", deployment_id="my-e5", number_of_allocations=2).execute({"ti": ti})
    assert ti.pushed == {
        "_link_TrainedModelsLink": "https://kibana.example.com/app/ml/trained_models?_a=(trained_models:(queryText:'my-e5'))"
    }


def test_no_kibana_url_no_link(sim):
    ti = FakeTI()
    UpdateDeploymentOperator(task_id="scale", deployment_id="my-e5", number_of_allocations=2).execute({"ti": ti})
    assert ti.pushed == {}
    assert [link.name for link in UpdateDeploymentOperator.operator_extra_links] == [TrainedModelsLink.name]


def test_every_task_that_names_a_deployment_offers_the_link() -> None:
    from airflow_esml.operators.inference import BatchInferenceOperator
    from airflow_esml.operators.lease import (
        AcquireDeploymentLeaseOperator,
        KeepDeploymentLeaseOperator,
        ReleaseDeploymentLeaseOperator,
    )

    for operator in (
        AcquireDeploymentLeaseOperator,
        KeepDeploymentLeaseOperator,
        ReleaseDeploymentLeaseOperator,
        BatchInferenceOperator,
    ):
        assert [link.name for link in operator.operator_extra_links] == [TrainedModelsLink.name], operator


def test_scaled_deployment_and_batch_inference_tasks_keep_the_link(airflow_db, sim, monkeypatch, tmp_path):
    import importlib

    port = int(sim.url.rsplit(":", 1)[1])
    conn = {"conn_type": "elasticsearch", "host": "127.0.0.1", "port": port, "schema": "http",
            "extra": {"kibana_url": "https://kibana.example.com"}}  # fmt: skip
    monkeypatch.setenv(CONN_ENV, json.dumps(conn))
    dag = importlib.import_module("example_dags.esml_batch_inference").dag
    run = dag.test(run_conf={"allocations": 2, "documents": 20, "output_dir": str(tmp_path)})
    assert run.state == "success"
    url = "https://kibana.example.com/app/ml/trained_models?_a=(trained_models:(queryText:'my-e5'))"
    links = {}
    for ti in run.get_task_instances():
        links[ti.task_id] = ti.xcom_pull(task_ids=ti.task_id, key="_link_TrainedModelsLink")
    group = "scaled_deployment"
    tasks = ("acquire", "keep_lease", "release", "infer")  # infer is created inside the block, so in the group
    assert {task: links[f"{group}.{task}"] for task in tasks} == dict.fromkeys(tasks, url)
