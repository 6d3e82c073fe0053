"""Re-embed an index inside Elasticsearch, with the deployment scaled up only while it runs.

The scale-up starts with the run, while ``prepare`` readies the data; ``embed`` (an ``_reindex`` through an
ingest pipeline with an ``inference`` processor, run as an Elasticsearch task) waits for both. No document
passes through the Airflow worker.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_esml.lifecycle import scaled_deployment
from airflow_esml.operators.index_inference import IndexInferenceOperator

DOC_MD = """
### Re-embed an index inside Elasticsearch

**prepare** puts the ingest pipeline `pipeline` (an `inference` processor of `deployment_id` from `text` to
`embedding`) and, when `source_index` does not exist yet, fills it with `documents` placeholder documents (on a
real cluster your data is already there). Meanwhile `scaled_deployment` takes a lease on the deployment and
scales it to `allocations`: the model loads while the data is prepared (`after=prepare`). **embed** then runs
`_reindex` from `source_index` to `dest_index` through the pipeline as an Elasticsearch task, sized from the
started allocations and their queue, and waits for it in the triggerer. The release (a teardown) puts the
deployment back and logs what the capacity cost and how busy it was.

**Params**: `deployment_id` (`my-e5`), `allocations` (4), `source_index` (`articles`), `dest_index`
(`articles-embedded`), `pipeline` (`e5-embeddings`), `documents` (2000).

**Against the simulator** (no cluster needed; `pip install "airflow-esml[testing]"`): start one simulator that
serves every example DAG's deployments, point the default connection at it, and run the DAG:

```
python -m airflow_esml.testing.simulator --port 9200 --ml-node ml-node-1:8 --ml-node ml-node-2:8 \\
    --deploy my-e5:1 --deploy my-e5-a=my-e5:1 --deploy my-e5-b=my-e5:1
export AIRFLOW_CONN_ELASTICSEARCH_DEFAULT=elasticsearch://127.0.0.1:9200/http
airflow dags test esml_reindex_embeddings
```
"""


@task
def prepare(deployment_id: str, source_index: str, pipeline: str, documents: int | str) -> dict[str, Any]:
    """Put the pipeline; create and fill the source index when it does not exist (a demo's data)."""
    documents = int(documents)  # a rendered template is a string
    from airflow_esml.hooks.ml import ElasticsearchMLHook  # loads the elasticsearch client

    client = ElasticsearchMLHook().client
    processor = {"model_id": deployment_id, "input_output": [{"input_field": "text", "output_field": "embedding"}]}
    client.ingest.put_pipeline(id=pipeline, processors=[{"inference": processor}])
    created = 0
    if not client.indices.exists(index=source_index):
        client.indices.create(index=source_index)
        for start in range(0, documents, 500):
            batch = range(start, min(documents, start + 500))
            operations = [x for i in batch for x in ({"index": {"_id": str(i)}}, {"text": f"article number {i}"})]
            client.bulk(index=source_index, operations=operations, refresh=True)
            created += len(batch)
    return {"pipeline": pipeline, "documents_created": created}


with DAG(
    dag_id="esml_reindex_embeddings",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "deployment_id": Param("my-e5", type="string", description="the deployment that computes the embeddings"),
        "allocations": Param(4, type="integer", minimum=1, description="allocations while the batch runs"),
        "source_index": Param("articles", type="string", description="the index to re-embed"),
        "dest_index": Param("articles-embedded", type="string", description="where the embedded copies go"),
        "pipeline": Param("e5-embeddings", type="string", description="the ingest pipeline with the inference"),
        "documents": Param(2000, type="integer", minimum=1, description="placeholder documents if the source is new"),
    },
    doc_md=DOC_MD,
    tags=["example", "elasticsearch-ml"],
) as dag:
    # [START howto_reindex_embeddings]
    ready = prepare(
        "{{ params.deployment_id }}", "{{ params.source_index }}", "{{ params.pipeline }}", "{{ params.documents }}"
    )
    # the scale-up starts with the run; only embed waits for the data *and* the allocations
    with scaled_deployment(
        "{{ params.deployment_id }}",
        number_of_allocations="{{ params.allocations }}",
        deferrable=True,
        poll_interval=1,
        wait_timeout=600,
        after=ready,
    ):
        IndexInferenceOperator(
            task_id="embed",
            source_index="{{ params.source_index }}",
            dest_index="{{ params.dest_index }}",
            pipeline="{{ params.pipeline }}",
            deployment_id="{{ params.deployment_id }}",  # sizes slices and batches from its allocations
            deferrable=True,
            poll_interval=1,
        )
    # [END howto_reindex_embeddings]
