"""Table 7: DAG wall time with the scale-up overlapped with a preparation task, against the sequential order.

Runs the tasks of ``example_dags/esml_reindex_embeddings.py`` (acquire, wait, embed through a pipeline,
release) on the simulator, with a preparation of P seconds either before the scale-up (sequential,
``prepare >> group``) or beside it (overlapped, ``scaled_deployment(after=prepare)``). ``dag.test()`` runs one
task at a time, so the two branches run here in two threads, as two worker slots would; each task is the
provider's operator, run with ``execute()``.
"""

from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace
from typing import Any

from airflow_esml.testing import Simulator
from benchmarks.common import median

CONN_ENV = "AIRFLOW_CONN_ELASTICSEARCH_DEFAULT"
DEPLOYMENT = "my-e5"
#: the model load time of the defaults (``make bench`` passes its own)
LOAD_SECONDS = 5.0


class TI(SimpleNamespace):
    """The little of a task instance the operators use: XCom within one run."""

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        return self.pushed.get(key)


def run_once(
    prep_seconds: float,
    overlapped: bool,
    index: int,
    *,
    load_seconds: float,
    docs: int,
    seconds_per_doc: float,
    allocations: int,
    poll_interval: float = 0.5,
) -> dict[str, Any]:
    """One DAG run's tasks; returns its wall time, the batch task's time and the release's capacity figures."""
    from airflow_esml.operators.index_inference import IndexInferenceOperator
    from airflow_esml.operators.lease import AcquireDeploymentLeaseOperator, ReleaseDeploymentLeaseOperator
    from airflow_esml.sensors.deployment import AllocationsStartedSensor

    nodes = {"ml-node-1": allocations, "ml-node-2": allocations}
    with Simulator(ml_nodes=nodes, models=[DEPLOYMENT], load_seconds=0.05, infer_seconds_per_doc=seconds_per_doc,
                   seed=11) as sim:  # fmt: skip
        sim.cluster.start_deployment(DEPLOYMENT, number_of_allocations=1, wait=True)
        sim.cluster.set_load_seconds(load_seconds)
        previous = os.environ.get(CONN_ENV)
        os.environ[CONN_ENV] = sim.connection_uri()
        try:
            with sim.client() as es:
                processor = {"model_id": DEPLOYMENT, "input_output": [{"input_field": "text", "output_field": "emb"}]}
                es.ingest.put_pipeline(id="embed", processors=[{"inference": processor}])
                es.indices.create(index="src")
                ops = [x for i in range(docs) for x in ({"index": {"_id": str(i)}}, {"text": f"d{i}"})]
                es.bulk(index="src", refresh=True, operations=ops)
            context: Any = {"run_id": f"bench_{index}", "ti": TI(try_number=1, map_index=-1, pushed={})}

            def scale_up() -> None:
                AcquireDeploymentLeaseOperator(task_id="acquire", deployment_id=DEPLOYMENT,
                                               number_of_allocations=allocations).execute(context)  # fmt: skip
                AllocationsStartedSensor(task_id="wait", deployment_id=DEPLOYMENT, min_allocations=allocations,
                                         poke_interval=poll_interval, timeout=120).execute(context)  # fmt: skip

            start = time.time()
            if overlapped:
                prep = threading.Thread(target=time.sleep, args=(prep_seconds,))
                prep.start()
                scale_up()
                prep.join()
            else:
                time.sleep(prep_seconds)
                scale_up()
            infer_start = time.time()
            IndexInferenceOperator(task_id="embed", source_index="src", dest_index="dst", pipeline="embed",
                                   deployment_id=DEPLOYMENT, poll_interval=poll_interval).execute(context)  # fmt: skip
            inference = time.time() - infer_start
            released = ReleaseDeploymentLeaseOperator(task_id="release", deployment_id=DEPLOYMENT,
                                                      wait_task_id="wait").execute(context)  # fmt: skip
            wall = time.time() - start
        finally:
            if previous is None:
                os.environ.pop(CONN_ENV, None)
            else:
                os.environ[CONN_ENV] = previous
    usage = released.get("capacity_usage") or {}
    return {"wall": wall, "inference": inference, "utilisation": usage.get("utilisation")}


def overlap(
    prep_values: list[float],
    runs: int,
    *,
    load_seconds: float = LOAD_SECONDS,
    docs: int = 800,
    seconds_per_doc: float = 0.02,
    allocations: int = 4,
) -> dict[str, Any]:
    """Sequential and overlapped wall time per preparation time P (medians over ``runs``, alternating orders).

    The ideal is ``max(P, load) + inference``, with the inference the measured time of the overlapped run's
    batch task (the same batch as in the sequential run).
    """
    rows = []
    index = 0
    for prep in prep_values:
        samples: dict[str, list[dict[str, Any]]] = {"sequential": [], "overlapped": []}
        for run in range(runs):
            order = ("sequential", "overlapped") if run % 2 == 0 else ("overlapped", "sequential")
            for mode in order:
                sample = run_once(prep, mode == "overlapped", index, load_seconds=load_seconds, docs=docs,
                                  seconds_per_doc=seconds_per_doc, allocations=allocations)  # fmt: skip
                samples[mode].append(sample)
                index += 1
        ideals = [max(prep, load_seconds) + r["inference"] for r in samples["overlapped"]]
        ratios = [r["wall"] / ideal for r, ideal in zip(samples["overlapped"], ideals, strict=True)]
        row: dict[str, Any] = {"prep": prep, "runs": runs, "ideal": median(ideals)}
        row["overlapped_vs_ideal"] = median(ratios)
        for mode, values in samples.items():
            row[mode] = median([r["wall"] for r in values])
            row[f"{mode}_inference"] = median([r["inference"] for r in values])
            row[f"{mode}_utilisation"] = median([r["utilisation"] for r in values if r["utilisation"] is not None])
        rows.append(row)
    return {
        "load_seconds": load_seconds,
        "docs": docs,
        "seconds_per_doc": seconds_per_doc,
        "allocations": allocations,
        "rows": rows,
    }
