"""Batch inference on an Elasticsearch ML deployment that is scaled up only for the batch.

``scaled_deployment`` takes a lease on the deployment and scales it up (setup), waits until the allocations
are started (setup), runs the tasks created inside the block, and releases the lease as a teardown that runs
even when the inference fails: the deployment goes back to its baseline (adaptive settings included) unless
another run still holds a lease on it. Several runs of this DAG, or of other DAGs, may share the deployment.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_esml.lifecycle import scaled_deployment

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

    # [START howto_batch_inference]
    with scaled_deployment(
        "{{ params.deployment_id }}",
        number_of_allocations="{{ params.allocations }}",
        deferrable=True,
        poll_interval=1,
        wait_timeout=600,
    ):
        infer()
    # [END howto_batch_inference]
