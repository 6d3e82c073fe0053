"""Wall time of a batch with the scale-up overlapped with the data preparation, against the sequential order.

Runs the tasks of ``esml_reindex_embeddings`` (acquire, wait, embed through a pipeline, release) on the
simulator, with a preparation of P seconds either before the scale-up (sequential) or beside it (overlapped,
``scaled_deployment(after=prepare)``). ``dag.test()`` runs one task at a time, so the two branches run here
in two threads, as two worker slots would. Prints one Markdown table row per P.

    PYTHONPATH=. python scripts/measure_overlap.py
"""

from __future__ import annotations

import os
import sys
import threading
import time
from types import SimpleNamespace
from typing import Any

LOAD_SECONDS = 5.0
DOCS = 800
SECONDS_PER_DOC = 0.02  # 800 docs x 0.02 s / 4 allocations = 4 s of inference
ALLOCATIONS = 4


class TI(SimpleNamespace):
    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        return self.pushed.get(key)


def run_once(prep_seconds: float, overlapped: bool, index: int) -> tuple[float, dict[str, Any]]:
    from airflow_esml.operators.index_inference import IndexInferenceOperator
    from airflow_esml.operators.lease import AcquireDeploymentLeaseOperator, ReleaseDeploymentLeaseOperator
    from airflow_esml.sensors.deployment import AllocationsStartedSensor
    from airflow_esml.testing import Simulator

    with Simulator(ml_nodes={"ml-node-1": 4, "ml-node-2": 4}, models=["my-e5"], load_seconds=0.1,
                   infer_seconds_per_doc=SECONDS_PER_DOC) as sim:  # fmt: skip
        sim.cluster.start_deployment("my-e5", number_of_allocations=1, wait=True)
        sim.cluster.set_load_seconds(LOAD_SECONDS)
        os.environ["AIRFLOW_CONN_ELASTICSEARCH_DEFAULT"] = sim.connection_uri()
        with sim.client() as es:
            es.ingest.put_pipeline(
                id="embed",
                processors=[
                    {
                        "inference": {
                            "model_id": "my-e5",
                            "input_output": [{"input_field": "text", "output_field": "embedding"}],
                        }
                    }
                ],
            )
            es.indices.create(index="src")
            operations = [x for i in range(DOCS) for x in ({"index": {"_id": str(i)}}, {"text": f"d{i}"})]
            es.bulk(index="src", refresh=True, operations=operations)
        ti = TI(try_number=1, map_index=-1, pushed={})
        context = {"run_id": f"bench_{index}", "ti": ti}

        def scale_up() -> None:
            AcquireDeploymentLeaseOperator(task_id="acquire", deployment_id="my-e5",
                                           number_of_allocations=ALLOCATIONS).execute(context)  # fmt: skip
            AllocationsStartedSensor(task_id="wait", deployment_id="my-e5", min_allocations=ALLOCATIONS,
                                     poke_interval=0.5, timeout=120).execute(context)  # fmt: skip

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
                               deployment_id="my-e5", poll_interval=0.5).execute(context)  # fmt: skip
        inference = time.time() - infer_start
        released = ReleaseDeploymentLeaseOperator(task_id="release", deployment_id="my-e5",
                                                  wait_task_id="wait").execute(context)  # fmt: skip
        return time.time() - start, {"inference": inference, **(released["capacity_usage"] or {})}


def main() -> None:
    print("| P (s) | sequential (s) | overlapped (s) | max(P, load) + inference (s) | overlapped / ideal | "
          "utilisation seq. / ovl. |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for i, prep in enumerate(float(x) for x in (sys.argv[1:] or ["2", "5", "10"])):
        seq, seq_info = run_once(prep, False, 2 * i)
        ovl, ovl_info = run_once(prep, True, 2 * i + 1)
        ideal = max(prep, LOAD_SECONDS) + ovl_info["inference"]
        print(f"| {prep:.0f} | {seq:.1f} | {ovl:.1f} | {ideal:.1f} | {ovl / ideal:.2f} | "
              f"{seq_info.get('utilisation', 0):.0%} / {ovl_info.get('utilisation', 0):.0%} |")  # fmt: skip


if __name__ == "__main__":
    main()
