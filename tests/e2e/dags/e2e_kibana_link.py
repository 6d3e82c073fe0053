"""
Kibana-link DAG of the end-to-end harness: one provider task on a connection with a ``kibana_url`` extra.

The browser test (``tests/e2e/test_browser.py``) opens the finished task in the UI and looks for the
"Kibana trained models" link. The task asks for the allocation count ``my-e5`` already has, so it changes
nothing in the cluster and needs no wait. One retry absorbs a worker that could not reach a busy api-server.
"""

from __future__ import annotations

import datetime

from airflow.sdk import DAG

from airflow_esml.operators.deployment import UpdateDeploymentOperator

with DAG(
    dag_id="e2e_kibana_link",
    schedule=None,
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    default_args={"retries": 1, "retry_delay": datetime.timedelta(seconds=2)},
    tags=["e2e"],
):
    UpdateDeploymentOperator(
        task_id="scale_my_e5",
        deployment_id="my-e5",
        number_of_allocations=1,
        elasticsearch_conn_id="esml_kibana",
    )
