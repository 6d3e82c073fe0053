"""Batch inference on an Elasticsearch ML deployment that is scaled up only for the batch.

``scaled_deployment`` takes a lease on the deployment and scales it up (setup), waits until the allocations
are started (setup), runs the tasks created inside the block, and releases the lease as a teardown that runs
even when the inference fails: the deployment goes back to its baseline (adaptive settings included) unless
another run still holds a lease on it. Several runs of this DAG, or of other DAGs, may share the deployment.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, Param

from airflow_esml.lifecycle import scaled_deployment
from airflow_esml.operators.inference import BatchInferenceOperator


def documents(context: dict, jinja_env: object = None) -> list[str]:
    """The batch to score: ``params.documents`` placeholder sentences (read yours from storage).

    Airflow renders a callable in a templated field by calling it with the context and the Jinja environment.
    """
    return [f"document number {i}" for i in range(context["params"]["documents"])]


#: where the results go unless the ``output_dir`` param says otherwise (one JSON Lines file per run): in the
#: Airflow home (``AIRFLOW_HOME``, by default ``~/airflow``)
OUTPUT_DIR = os.path.join(os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow"), "esml_batch_inference")

DOC_MD = f"""
### Batch inference on a deployment scaled up for the batch

`scaled_deployment` takes a lease on `deployment_id` and scales it to `allocations` (setup), waits until they
are started (setup), runs **infer** (a `BatchInferenceOperator` over `documents` placeholder sentences), and
releases the lease as a teardown that runs even when the inference fails: the deployment goes back to its
baseline unless another run still holds a lease on it.

**Params**: `deployment_id` (default `my-e5`), `allocations` (4), `documents` (2000), `output_dir` (default
`$AIRFLOW_HOME/esml_batch_inference`, here `{OUTPUT_DIR}`): the results are written to
`<output_dir>/<run id>.jsonl`, one JSON result per document, in order.

**Against the simulator** (no cluster needed; `pip install "airflow-esml[testing]"`): start one simulator that
serves every example DAG's deployments, point the default connection at it, and run the DAG:

```
python -m airflow_esml.testing.simulator --port 9200 --ml-node ml-node-1:8 --ml-node ml-node-2:8 \\
    --deploy my-e5:1 --deploy my-e5-a=my-e5:1 --deploy my-e5-b=my-e5:1
export AIRFLOW_CONN_ELASTICSEARCH_DEFAULT=elasticsearch://127.0.0.1:9200/http
airflow dags test esml_batch_inference
```
"""

with DAG(
    dag_id="esml_batch_inference",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "deployment_id": Param("my-e5", type="string", description="the deployment to scale and infer with"),
        "allocations": Param(4, type="integer", minimum=1, description="allocations while the batch runs"),
        "documents": Param(2000, type="integer", minimum=1, description="placeholder documents to infer"),
        "output_dir": Param(
            OUTPUT_DIR, type="string", description="folder of the results: one JSON Lines file per run"
        ),
    },
    doc_md=DOC_MD,
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
            # keep the results: one JSON line per document, in order (the XCom gets only a summary)
            output_path="{{ params.output_dir }}/{{ run_id | replace(':', '_') | replace('+', '_') }}.jsonl",
        )
    # [END howto_batch_inference]
