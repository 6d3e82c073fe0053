"""A/B test of capacity: two deployments of one model, given different allocation counts, infer the same documents.

Both deployments (for example ``my-e5-a`` and ``my-e5-b`` of the model ``my-e5``, started with
``deployment_id=...``) are scaled independently - gradually and only as far as the ML nodes allow - then
the same documents go through each, one after the other, and the DAG's output compares their throughput:
what this provider measured (documents per second) and what Elasticsearch reports (inferences in the last
minute, average inference time). Teardown tasks put both deployments back to their previous counts, also
when a task in between fails.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_esml.operators.deployment import UpdateDeploymentOperator
from airflow_esml.operators.inference import BatchInferenceOperator

DOC_MD = """
### A/B test of capacity: two deployments of one model, different allocation counts, the same documents

**scale_a** and **scale_b** (setups) scale `deployment_a` and `deployment_b` to their allocations, gradually
(at most 2 at a time) and only as far as the ML nodes allow; **documents** makes `documents` placeholder
sentences; **infer_a** and **infer_b** send them through each deployment; **compare** prints and returns both
throughputs side by side (measured docs/s, and Elasticsearch's inferences per minute and average time);
**restore_a** and **restore_b** (teardowns) put both deployments back to their previous counts, also when a task
in between fails.

**Params**: `deployment_a` (default `my-e5-a`), `deployment_b` (`my-e5-b`), `allocations_a` (1),
`allocations_b` (4), `documents` (400). Both deployments must exist: start the model twice with
`deployment_id=...`.

**Against the simulator** (no cluster needed; `pip install "airflow-esml[testing]"`): start one simulator that
serves every example DAG's deployments, point the default connection at it, and run the DAG:

```
python -m airflow_esml.testing.simulator --port 9200 --ml-node ml-node-1:8 --ml-node ml-node-2:8 \\
    --deploy my-e5:1 --deploy my-e5-a=my-e5:1 --deploy my-e5-b=my-e5:1
export AIRFLOW_CONN_ELASTICSEARCH_DEFAULT=elasticsearch://127.0.0.1:9200/http
airflow dags test esml_ab_test
```
"""

with DAG(
    dag_id="esml_ab_test",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "deployment_a": Param("my-e5-a", type="string", description="the first deployment of the model"),
        "deployment_b": Param("my-e5-b", type="string", description="the second deployment of the same model"),
        "allocations_a": Param(1, type="integer", minimum=1, description="allocations of deployment_a"),
        "allocations_b": Param(4, type="integer", minimum=1, description="allocations of deployment_b"),
        "documents": Param(400, type="integer", minimum=1, description="placeholder documents each deployment infers"),
    },
    doc_md=DOC_MD,
    tags=["example", "elasticsearch-ml"],
) as dag:
    # [START howto_ab_test]
    scale_a = UpdateDeploymentOperator(
        task_id="scale_a",
        deployment_id="{{ params.deployment_a }}",
        number_of_allocations="{{ params.allocations_a }}",
        max_step=2,
        capacity_policy="fail",
        wait_for_completion=True,
        poll_interval=1,
        timeout=900,
    )
    scale_b = UpdateDeploymentOperator(
        task_id="scale_b",
        deployment_id="{{ params.deployment_b }}",
        number_of_allocations="{{ params.allocations_b }}",
        max_step=2,
        capacity_policy="fail",
        wait_for_completion=True,
        poll_interval=1,
        timeout=900,
    )

    @task
    def documents(params: dict | None = None) -> list[dict[str, str]]:
        """The documents both deployments infer (placeholder sentences)."""
        assert params is not None
        return [{"text_field": f"document number {i} about elasticsearch"} for i in range(params["documents"])]

    docs: Any = documents()  # an XComArg: both inference tasks read the same list
    infer_a = BatchInferenceOperator(
        task_id="infer_a", deployment_id="{{ params.deployment_a }}", docs=docs, return_results=False
    )
    infer_b = BatchInferenceOperator(
        task_id="infer_b", deployment_id="{{ params.deployment_b }}", docs=docs, return_results=False
    )

    @task
    def compare(a: Any, b: Any, params: dict | None = None) -> dict:
        """Both deployments' throughput side by side: measured here, and as Elasticsearch reports it.

        :param a: infer_a's summary (docs, seconds, docs_per_second, allocations).
        :param b: infer_b's summary.
        """
        from airflow_esml.core.metrics import metrics_of
        from airflow_esml.hooks.ml import ElasticsearchMLHook

        assert params is not None
        hook = ElasticsearchMLHook()
        rows = {}
        for name, summary in ((params["deployment_a"], a), (params["deployment_b"], b)):
            metrics = metrics_of(hook.get_deployment(name))
            rows[name] = {
                "allocations": summary["allocations"],
                "docs": summary["docs"],
                "seconds": summary["seconds"],
                "docs_per_second": summary["docs_per_second"],
                "throughput_last_minute": metrics.throughput_last_minute,
                "average_inference_time_ms": metrics.average_inference_time_ms,
            }
        (name_a, row_a), (name_b, row_b) = rows.items()
        faster = name_b if row_b["docs_per_second"] > row_a["docs_per_second"] else name_a
        rates = sorted((row_a["docs_per_second"], row_b["docs_per_second"]))
        speedup = round(rates[1] / rates[0], 2) if rates[0] else None
        print(f"{'deployment':<16}{'allocations':>12}{'docs/s':>10}{'ES inferences/min':>19}{'avg ms':>9}")
        for name, row in rows.items():
            average = row["average_inference_time_ms"]
            print(
                f"{name:<16}{row['allocations']:>12}{row['docs_per_second']:>10}{row['throughput_last_minute']:>19}"
                f"{'' if average is None else round(average, 1):>9}"
            )
        print(f"faster: {faster} ({speedup}x)")
        return {"deployments": rows, "faster": faster, "speedup": speedup}

    restore_a = UpdateDeploymentOperator(
        task_id="restore_a",
        deployment_id="{{ params.deployment_a }}",
        number_of_allocations="{{ ti.xcom_pull(task_ids='scale_a')['previous_number_of_allocations'] }}",
        max_step=2,
    )
    restore_b = UpdateDeploymentOperator(
        task_id="restore_b",
        deployment_id="{{ params.deployment_b }}",
        number_of_allocations="{{ ti.xcom_pull(task_ids='scale_b')['previous_number_of_allocations'] }}",
        max_step=2,
    )

    result = compare(infer_a.output, infer_b.output)
    # one scale-up after the other, so that each capacity check sees the other deployment's new allocations
    scale_a.as_setup() >> scale_b.as_setup() >> infer_a >> infer_b >> result
    docs >> [infer_a, infer_b]
    result >> [restore_a.as_teardown(setups=scale_a), restore_b.as_teardown(setups=scale_b)]
    # [END howto_ab_test]
