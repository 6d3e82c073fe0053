"""A nightly batch through an inference endpoint, warmed up before the job and left to its adaptive settings after.

Most deployments today belong to inference endpoints (``semantic_text``, the default
``.multilingual-e5-small-elasticsearch`` endpoint, or your own ``PUT _inference/text_embedding/my-e5-endpoint``),
with adaptive allocations that scale down, often to zero, when idle. Before a nightly job, ``scaled_deployment``
raises the endpoint's adaptive minimum to the allocations the job needs (``adaptive_policy="raise_min"``, the
default: adaptive allocations stay on), waits until they are started, runs the job, and puts the previous minimum
and maximum back as a teardown: the endpoint then scales down by itself. A default endpoint that was never used
is deployed first. It runs unchanged on Elastic Cloud Serverless, where adaptive allocations are always on.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, Param

from airflow_esml.lifecycle import scaled_deployment
from airflow_esml.operators.inference import BatchInferenceOperator


def documents(context: dict, jinja_env: object = None) -> list[str]:
    """The night's documents: ``params.documents`` placeholder sentences (read yours from storage).

    Airflow renders a callable in a templated field by calling it with the context and the Jinja environment.
    """
    return [f"passage: nightly document number {i}" for i in range(context["params"]["documents"])]


#: where the results go unless the ``output_dir`` param says otherwise (one JSON Lines file per run)
OUTPUT_DIR = os.path.join(os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow"), "esml_inference_endpoint")

DOC_MD = f"""
### A nightly batch through an inference endpoint

Every night at 02:00 UTC, **warm_up** (a `scaled_deployment` block) raises the adaptive minimum of the endpoint
`inference_id` to `allocations` (adaptive allocations stay on: `adaptive_policy="raise_min"`), waits until they
are started, runs **infer** (a `BatchInferenceOperator` over `documents` placeholder passages), and as a teardown
that runs even when the job fails puts the endpoint's previous adaptive minimum and maximum back, so that it
scales down by itself again (to zero, for the default endpoints). A default endpoint that was never used is
deployed first, the way Elasticsearch does at its first inference call. Other runs, or other DAGs, may hold
leases on the same endpoint at the same time.

**Params**: `inference_id` (default `.multilingual-e5-small-elasticsearch`, or your own endpoint such as
`my-e5-endpoint`, or a trained-model deployment id), `allocations` (2), `documents` (500), `output_dir` (default
`$AIRFLOW_HOME/esml_inference_endpoint`, here `{OUTPUT_DIR}`): the results are written to
`<output_dir>/<run id>.jsonl`, one JSON result per document, in order.

**Elastic Cloud Serverless**: runs unchanged. Only adaptive settings are sent, and the capacity check is skipped
(the project autoscales). The API key needs `manage_inference` (and `manage_ml` for trained-model deployments).

**Against the simulator** (no cluster needed; `pip install "airflow-esml[testing]"`): start one simulator that
serves every example DAG's deployments, point the default connection at it, and run the DAG:

```
python -m airflow_esml.testing.simulator --port 9200 --ml-node ml-node-1:8 --ml-node ml-node-2:8 \\
    --deploy my-e5:1 --deploy my-e5-a=my-e5:1 --deploy my-e5-b=my-e5:1
export AIRFLOW_CONN_ELASTICSEARCH_DEFAULT=elasticsearch://127.0.0.1:9200/http
airflow dags test esml_inference_endpoint
```
"""

with DAG(
    dag_id="esml_inference_endpoint",
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "inference_id": Param(
            ".multilingual-e5-small-elasticsearch",
            type="string",
            description="the inference endpoint to warm up and infer through (or a trained-model deployment id)",
        ),
        "allocations": Param(2, type="integer", minimum=1, description="adaptive minimum while the job runs"),
        "documents": Param(500, type="integer", minimum=1, description="placeholder documents to infer"),
        "output_dir": Param(
            OUTPUT_DIR, type="string", description="folder of the results: one JSON Lines file per run"
        ),
    },
    doc_md=DOC_MD,
    tags=["example", "elasticsearch-ml"],
) as dag:
    # [START howto_inference_endpoint]
    with scaled_deployment(
        "{{ params.inference_id }}",
        number_of_allocations="{{ params.allocations }}",
        group_id="warm_up",
        adaptive_policy="raise_min",  # the default: adaptive allocations stay on, their minimum is raised
        deferrable=True,
        poll_interval=1,
        wait_timeout=900,
    ):
        BatchInferenceOperator(
            task_id="infer",
            deployment_id="{{ params.inference_id }}",
            docs=documents,
            output_path="{{ params.output_dir }}/{{ run_id | replace(':', '_') | replace('+', '_') }}.jsonl",
        )
    # after the block's release the endpoint has its own adaptive settings again and scales down when idle
    # [END howto_inference_endpoint]
