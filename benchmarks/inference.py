"""Table 4: batch inference throughput against 1, 2, 4 and 8 started allocations."""

from __future__ import annotations

import os
import time
from typing import Any

from airflow_esml.testing import Simulator
from benchmarks.common import median, wait_exactly

CONN_ENV = "AIRFLOW_CONN_ELASTICSEARCH_DEFAULT"
DEPLOYMENT = "bench-e5"


def _docs(n: int) -> list[dict[str, str]]:
    return [{"text_field": f"benchmark document {i}"} for i in range(n)]


def batch_inference(
    sizes: list[int], runs: int, docs: int, naive_docs: int, seconds_per_doc: float = 0.005
) -> dict[str, Any]:
    """docs/s of :func:`~airflow_esml.hooks.inference.batch_infer` and of the naive loops, per allocation count.

    Methods: ``batch`` (the provider: requests in flight for allocations x threads), ``sequential_chunks``
    (the same chunks, one request at a time) and ``naive`` (one document per request, one at a time). The
    two sequential loops run on ``naive_docs`` documents (a sample: docs/s does not depend on the count).
    """
    from airflow_esml.hooks.inference import batch_infer
    from airflow_esml.hooks.ml import ElasticsearchMLHook

    samples: dict[tuple[str, int], list[float]] = {}
    seconds: dict[int, list[float]] = {}
    nodes = {"ml-1": max(sizes) // 2 + 1, "ml-2": max(sizes) // 2 + 1}
    with Simulator(
        ml_nodes=nodes, models=["e5"], load_seconds=0.05, seed=3, infer_seconds_per_doc=seconds_per_doc
    ) as sim:
        previous = os.environ.get(CONN_ENV)
        os.environ[CONN_ENV] = sim.connection_uri()
        try:
            sim.cluster.start_deployment("e5", deployment_id=DEPLOYMENT, number_of_allocations=sizes[0], wait=True)
            hook = ElasticsearchMLHook()
            for _ in range(runs):
                for allocations in sizes:
                    sim.cluster.update_deployment(DEPLOYMENT, number_of_allocations=allocations)
                    wait_exactly(hook, DEPLOYMENT, allocations)
                    result = batch_infer(hook, DEPLOYMENT, _docs(docs))
                    if result.plan.allocations != allocations or len(result.results) != docs:
                        raise RuntimeError(f"batch on {allocations} allocations: {result.summary()}")
                    samples.setdefault(("batch", allocations), []).append(result.docs_per_second)
                    seconds.setdefault(allocations, []).append(result.seconds)
                    chunk = result.plan.chunk_size
                    samples.setdefault(("sequential_chunks", allocations), []).append(
                        _sequential(hook, _docs(naive_docs), chunk)
                    )
                    samples.setdefault(("naive", allocations), []).append(_sequential(hook, _docs(naive_docs), 1))
            hook.close()
        finally:
            if previous is None:
                os.environ.pop(CONN_ENV, None)
            else:
                os.environ[CONN_ENV] = previous
    rows = []
    for allocations in sizes:
        capacity = allocations / seconds_per_doc
        row: dict[str, Any] = {"allocations": allocations, "capacity": capacity, "runs": runs}
        for method in ("batch", "sequential_chunks", "naive"):
            rate = median(samples[(method, allocations)])
            row[method] = {"docs_per_second": rate, "of_capacity": rate / capacity}
        row["batch_seconds"] = median(seconds[allocations])
        rows.append(row)
    base = rows[0]["batch_seconds"]
    for row in rows:
        row["time_vs_first"] = row["batch_seconds"] / base
    return {"docs": docs, "naive_docs": naive_docs, "seconds_per_doc": seconds_per_doc, "rows": rows}


def _sequential(hook: Any, docs: list[dict[str, str]], chunk: int) -> float:
    started = time.monotonic()
    for i in range(0, len(docs), chunk):
        hook.infer(DEPLOYMENT, docs[i : i + chunk])
    return len(docs) / (time.monotonic() - started)
