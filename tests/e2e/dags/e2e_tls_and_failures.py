"""
TLS and failure paths of the provider inside real worker processes (run by the e2e tests).

Each task uses its own connection from an ``AIRFLOW_CONN_*`` environment variable: the simulator's CA
(``elasticsearch_default``), a CA that did not sign the server certificate (``esml_wrong_ca``) and
``verify_certs=false`` (``esml_no_verify``). One more task scales a deployment that does not exist. The two
failing tasks leave exception messages in their logs, which the tests scan for the API key.
"""

from __future__ import annotations

import datetime

from airflow.sdk import DAG

from airflow_esml.operators.deployment import UpdateDeploymentOperator
from airflow_esml.sensors.deployment import AllocationsStartedSensor

DEPLOYMENT = "e2e-model"

with DAG(
    dag_id="e2e_tls_and_failures",
    schedule=None,
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    default_args={"retries": 0},
    tags=["e2e"],
):
    for task_id, conn_id in (
        ("verified_by_ca", "elasticsearch_default"),
        ("wrong_ca", "esml_wrong_ca"),
        ("no_verify", "esml_no_verify"),
    ):
        AllocationsStartedSensor(
            task_id=task_id,
            deployment_id=DEPLOYMENT,
            min_allocations=1,
            elasticsearch_conn_id=conn_id,
            deferrable=False,
            poke_interval=1,
            timeout=60,
        )
    UpdateDeploymentOperator(task_id="missing_deployment", deployment_id="e2e-no-such-model", number_of_allocations=2)
