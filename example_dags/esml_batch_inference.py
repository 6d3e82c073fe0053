"""Batch inference on an Elasticsearch ML deployment that is scaled up only for the batch.

``scaled_deployment`` takes a lease on the deployment and scales it up (setup), waits until the allocations
are started (setup), runs the tasks created inside the block, and releases the lease as a teardown that runs
even when the inference fails: the deployment goes back to its baseline (adaptive settings included) unless
another run still holds a lease on it. Several runs of this DAG, or of other DAGs, may share the deployment.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

from airflow_esml.lifecycle import scaled_deployment
from airflow_esml.operators.inference import BatchInferenceOperator


def documents(context: dict, jinja_env: object = None) -> list[str]:
    """The batch to score: ``params.documents`` placeholder sentences (read yours from storage).

    Airflow renders a callable in a templated field by calling it with the context and the Jinja environment.
    """
    return [f"document number {i}" for i in range(context["params"]["documents"])]


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
    with scaled_deployment(
        "{{ params.deployment_id }}",
        number_of_allocations="{{ params.allocations }}",
        deferrable=True,
        poll_interval=1,
        wait_timeout=600,
    ):
        BatchInferenceOperator(
            task_id="infer",
            deployment_id="{{ params.deployment_id }}",
            docs=documents,
        )
    # [END howto_batch_inference]
