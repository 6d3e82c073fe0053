"""
Probe DAG of the end-to-end harness: a deferrable sensor between two Python tasks.

It needs no plugin code, so it proves the machinery on its own: the run is triggered through the REST API,
the sensor is serialised into the database and waits in the triggerer (which the test restarts), and
the last task reads the Elasticsearch connection from ``AIRFLOW_CONN_ELASTICSEARCH_DEFAULT`` in a worker.
"""

from __future__ import annotations

import datetime
import os

from airflow.providers.standard.sensors.time_delta import WaitSensor
from airflow.sdk import DAG, BaseHook, task

with DAG(
    dag_id="e2e_probe",
    schedule=None,
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
    catchup=False,
    tags=["e2e"],
):

    @task
    def start() -> str:
        return "started"

    wait = WaitSensor(
        task_id="wait_in_triggerer",
        time_to_wait=datetime.timedelta(seconds=float(os.environ.get("ESML_E2E_PROBE_WAIT", "20"))),
        deferrable=True,
    )

    @task
    def read_connection() -> dict[str, object]:
        conn = BaseHook.get_connection("elasticsearch_default")
        extra = conn.extra_dejson
        # Only non-secret facts leave the task; the test scans XCom and logs for the key itself.
        print(f"connection host={conn.host} port={conn.port} schema={conn.schema}")
        return {
            "host": conn.host,
            "port": conn.port,
            "schema": conn.schema,
            "has_api_key": bool(extra.get("api_key")),
            "ca_file_exists": os.path.isfile(str(extra.get("ca_certs", ""))),
        }

    start() >> wait >> read_connection()
