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
