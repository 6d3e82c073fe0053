"""Batch inference on an Elasticsearch ML deployment that is scaled up only for the batch.

Scale up as a setup task, wait until the allocations are started, infer a batch of documents, and scale
back to the previous setting as a teardown that runs even when the inference fails.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_esml.operators.deployment import UpdateDeploymentOperator
from airflow_esml.sensors.deployment import AllocationsStartedSensor

with DAG(
    dag_id="esml_batch_inference",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "deployment_id": Param("my-e5", type="string"),
        "allocations": Param(4, type="integer", minimum=1),
        "documents": Param(2000, type="integer", minimum=1),
    },
    tags=["example", "elasticsearch-ml"],
) as dag:
    # [START howto_batch_inference]
    scale_up = UpdateDeploymentOperator(
        task_id="scale_up",
        deployment_id="{{ params.deployment_id }}",
        number_of_allocations="{{ params.allocations }}",
    )
    wait = AllocationsStartedSensor(
        task_id="wait_for_allocations",
        deployment_id="{{ params.deployment_id }}",
        min_allocations="{{ params.allocations }}",
        deferrable=True,
        poke_interval=1,
        timeout=600,
    )

    @task
    def infer(params: dict | None = None) -> dict:
        """Infer a batch of documents (a placeholder batch: one sentence per document)."""
        import time

        from airflow_esml.hooks.ml import ElasticsearchMLHook

        assert params is not None
        docs = [{"text_field": f"document number {i}"} for i in range(params["documents"])]
        hook = ElasticsearchMLHook()
        started = time.monotonic()
        results = [r for i in range(0, len(docs), 50) for r in hook.infer(params["deployment_id"], docs[i : i + 50])]
        seconds = time.monotonic() - started
        return {
            "documents": len(results),
            "seconds": round(seconds, 3),
            "docs_per_second": round(len(results) / seconds, 1),
        }

    scale_down = UpdateDeploymentOperator(
        task_id="scale_down",
        deployment_id="{{ params.deployment_id }}",
        number_of_allocations="{{ ti.xcom_pull(task_ids='scale_up')['previous_number_of_allocations'] }}",
    )

    scale_up.as_setup() >> wait >> infer() >> scale_down.as_teardown(setups=scale_up)
    # [END howto_batch_inference]
