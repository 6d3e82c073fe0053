"""Tables 5 and 6: the capacity utilisation of one whole DAG run, and batch inference inside Elasticsearch.

Table 5 runs ``example_dags/esml_batch_inference.py`` with ``dag.test()`` (in a child process with its own
Airflow home, see :mod:`benchmarks.dagrun`) and takes the figures from the release task's ``capacity_usage``
XCom (the provider's accounting, :mod:`airflow_esml.core.accounting`). Beside it runs the hand-wired pattern:
scale up with the plain ML update API, poll the stats every 30 s until the allocations are started, infer the
same documents, scale down; its figures come from the same accounting functions over the same stats, with the
window from the scale-up request to the scale-down request. Both are cross-checked with the simulator's own
record: the documents it inferred in the window x its service time (busy), and its target changes (held).

Table 6 runs ``IndexInferenceOperator`` (``_reindex`` through an ingest pipeline with an ``inference``
processor) and ``BatchInferenceOperator`` on the same documents at 1, 4 and 8 started allocations, and counts
the documents the worker sent or received from the simulator's audit log.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from airflow_esml.testing import Simulator
from benchmarks.common import ROOT, median, wait_exactly

CONN_ENV = "AIRFLOW_CONN_ELASTICSEARCH_DEFAULT"
DEPLOYMENT = "my-e5"  # the example DAG's default
RELEASE_TASK = "scaled_deployment.release"
INFER_TASK = "scaled_deployment.infer"


class TI(SimpleNamespace):
    """The little of a task instance the operators use: XCom within one run."""

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        return self.pushed.get(key)


def _context(run_id: str) -> Any:
    """A task context with the run id and the task instance (typed Any: not a full ``Context``)."""
    return {"run_id": run_id, "ti": TI(try_number=1, map_index=-1, pushed={})}


@contextmanager
def _connection(sim: Simulator) -> Iterator[None]:
    previous = os.environ.get(CONN_ENV)
    os.environ[CONN_ENV] = sim.connection_uri()
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(CONN_ENV, None)
        else:
            os.environ[CONN_ENV] = previous


# -- table 5: capacity utilisation of one whole DAG run ----------------------------------------------------------


@contextmanager
def airflow_home() -> Iterator[dict[str, str]]:
    """A temporary Airflow home with a migrated SQLite metadata DB; yields the environment of its processes."""
    home = tempfile.mkdtemp(prefix="esml-bench-airflow-")
    env = {
        **os.environ,
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
    }
    try:
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=env)
        yield env
    finally:
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def _cluster(load_seconds: float, seconds_per_doc: float, allocations: int) -> Iterator[Simulator]:
    """``my-e5`` at a baseline of 1 allocation on two ML nodes with room for ``allocations``."""
    nodes = {"ml-node-1": allocations, "ml-node-2": allocations}
    with Simulator(
        ml_nodes=nodes, models=[DEPLOYMENT], load_seconds=0.05, seed=5, infer_seconds_per_doc=seconds_per_doc
    ) as sim:
        sim.cluster.start_deployment(DEPLOYMENT, number_of_allocations=1, wait=True)
        sim.cluster.set_load_seconds(load_seconds)
        yield sim


def _simulator_record(sim: Simulator, start: float, end: float, seconds_per_doc: float) -> dict[str, Any]:
    """What the simulator itself saw in the window [start, end]: busy allocation-seconds (documents inferred x
    service time), when the new allocations were started, and how long its target stayed above the baseline."""
    inferred = sum(
        int(e.data.get("docs", 0))
        for e in sim.audit.events("inference", deployment_id=DEPLOYMENT, status=200)
        if start <= e.at <= end
    )
    history = sim.audit.target_history(DEPLOYMENT)
    ups = [at for at, value in history if value > 1 and at >= start - 1]
    downs = [at for at, value in history if value <= 1 and ups and at > ups[0]]
    started = [
        e.at
        for e in sim.audit.events("route_state", deployment_id=DEPLOYMENT)
        if e.data.get("state") == "started" and ups and e.at >= ups[0]
    ]
    return {
        "docs": inferred,
        "busy": inferred * seconds_per_doc,
        "loaded_after": (max(started) - ups[0]) if started else None,
        "held": (downs[0] - ups[0]) if ups and downs else None,
    }


def provider_run(
    sim: Simulator, env: dict[str, str], *, docs: int, allocations: int, seconds_per_doc: float
) -> dict[str, Any]:
    """``dag.test()`` of ``esml_batch_inference`` in a child process; the release's ``capacity_usage``."""
    tmp = Path(tempfile.mkdtemp(prefix="esml-bench-dag-"))
    try:
        config = {
            "dag": "esml_batch_inference",
            "run_conf": {"allocations": allocations, "documents": docs, "output_dir": str(tmp / "out")},
            "xcom_tasks": [RELEASE_TASK, INFER_TASK],
            "result_path": str(tmp / "result.json"),
        }
        began = time.time()
        with (tmp / "child.log").open("w") as out:
            code = subprocess.run(
                [sys.executable, "-m", "benchmarks.dagrun", json.dumps(config)],
                cwd=ROOT,
                env={**env, CONN_ENV: sim.connection_uri()},
                stdout=out,
                stderr=out,
            ).returncode
        result_file = tmp / "result.json"
        if code != 0 or not result_file.exists():
            tail = "\n".join((tmp / "child.log").read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"dag.test() of esml_batch_inference failed (exit code {code}):\n{tail}")
        result = json.loads(result_file.read_text())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    usage = (result["xcoms"].get(RELEASE_TASK) or {}).get("capacity_usage")
    infer = result["xcoms"].get(INFER_TASK) or {}
    if not usage or int(infer.get("docs", 0)) != docs:
        raise RuntimeError(f"esml_batch_inference: no capacity_usage or not {docs} documents: {result['xcoms']}")
    return {
        "usage": usage,
        "dag_seconds": result["ended"] - result["started"],
        "inference_seconds": float(infer.get("seconds", 0.0)),
        "simulator": _simulator_record(sim, began, time.time(), seconds_per_doc),
    }


def hand_wired_run(
    sim: Simulator, *, docs: int, allocations: int, seconds_per_doc: float, poll_every: float
) -> dict[str, Any]:
    """Scale up with the plain ML update API, poll the stats every ``poll_every`` s until the allocations are
    started, infer the same documents (``BatchInferenceOperator``), scale down; accounted like the provider."""
    from airflow_esml.core import accounting
    from airflow_esml.hooks.ml import ElasticsearchMLHook
    from airflow_esml.operators.inference import BatchInferenceOperator

    tmp = Path(tempfile.mkdtemp(prefix="esml-bench-hand-"))
    try:
        with _connection(sim), sim.client() as es:
            hook = ElasticsearchMLHook()
            began = time.time()
            opening = accounting.open_window(
                hook.get_deployment(DEPLOYMENT), baseline=1, allocations=allocations, now=time.time()
            )
            es.ml.update_trained_model_deployment(model_id=DEPLOYMENT, number_of_allocations=allocations)
            while True:  # a sensor: poke at once, then every poll_every seconds
                stats = es.ml.get_trained_models_stats(model_id=DEPLOYMENT)["trained_model_stats"][0]
                if stats["deployment_stats"]["allocation_status"]["allocation_count"] >= allocations:
                    ready_at = time.time()
                    break
                time.sleep(poll_every)
            infer_start = time.time()
            summary = BatchInferenceOperator(
                task_id="infer",
                deployment_id=DEPLOYMENT,
                docs=[f"document number {i}" for i in range(docs)],
                output_path=str(tmp / "results.jsonl"),
            ).execute(_context("hand_wired"))
            inference = time.time() - infer_start
            end = accounting.snapshot(hook.get_deployment(DEPLOYMENT))
            ended = time.time()
            es.ml.update_trained_model_deployment(model_id=DEPLOYMENT, number_of_allocations=1)
            hook.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if int(summary.get("docs", 0)) != docs:
        raise RuntimeError(f"hand-wired: not {docs} documents: {summary}")
    usage = accounting.close_window(opening, end, ended, ready_at=ready_at).to_dict()
    time.sleep(0.2)  # the scale-down's target change lands in the audit log
    return {
        "usage": usage,
        "dag_seconds": time.time() - began,
        "inference_seconds": inference,
        "simulator": _simulator_record(sim, began, time.time(), seconds_per_doc),
    }


def _summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    def med(get: Any) -> float:
        values = [get(s) for s in samples]
        return median([float(v) for v in values if v is not None])

    return {
        "runs": len(samples),
        "held_seconds": med(lambda s: s["usage"]["held_seconds"]),
        "allocation_seconds": med(lambda s: s["usage"]["allocation_seconds"]),
        "loading": med(lambda s: s["usage"]["loading_allocation_seconds"]),
        "busy": med(lambda s: s["usage"]["busy_allocation_seconds"]),
        "utilisation": med(lambda s: s["usage"]["utilisation"]),
        "deployment_busy": med(lambda s: s["usage"]["deployment_busy_allocation_seconds"]),
        "simulator_busy": med(lambda s: s["simulator"]["busy"]),
        "simulator_held": med(lambda s: s["simulator"]["held"]),
        "simulator_loaded_after": med(lambda s: s["simulator"]["loaded_after"]),
        "dag_seconds": med(lambda s: s["dag_seconds"]),
        "inference_seconds": med(lambda s: s["inference_seconds"]),
        "utilisations": [s["usage"]["utilisation"] for s in samples],
    }


def utilisation(
    runs: int,
    *,
    docs: int = 5000,
    seconds_per_doc: float = 0.05,
    load_seconds: float = 5.0,
    allocations: int = 4,
    poll_every: float = 30.0,
) -> dict[str, Any]:
    """The provider's DAG run and the hand-wired pattern, alternately, ``runs`` times each, each on a fresh
    simulator (``my-e5`` at a baseline of 1)."""
    samples: dict[str, list[dict[str, Any]]] = {"provider": [], "hand_wired": []}
    with airflow_home() as env:
        for run in range(runs):
            order = ("provider", "hand_wired") if run % 2 == 0 else ("hand_wired", "provider")
            for mode in order:
                with _cluster(load_seconds, seconds_per_doc, allocations) as sim:
                    if mode == "provider":
                        sample = provider_run(sim, env, docs=docs, allocations=allocations,
                                              seconds_per_doc=seconds_per_doc)  # fmt: skip
                    else:
                        sample = hand_wired_run(sim, docs=docs, allocations=allocations,
                                                seconds_per_doc=seconds_per_doc, poll_every=poll_every)  # fmt: skip
                samples[mode].append(sample)
    return {
        "docs": docs,
        "seconds_per_doc": seconds_per_doc,
        "load_seconds": load_seconds,
        "allocations": allocations,
        "baseline": 1,
        "poll_every": poll_every,
        "ideal_inference": docs * seconds_per_doc / allocations,
        "provider": _summary(samples["provider"]),
        "hand_wired": _summary(samples["hand_wired"]),
    }


# -- table 6: batch inference inside Elasticsearch ---------------------------------------------------------------


def _worker_traffic(sim: Simulator, indices: tuple[str, ...], since: int, since_requests: int) -> dict[str, int]:
    """Since the audit positions: documents the worker sent to ``_infer``, and its requests on the data
    ``indices`` (a search, bulk or document request there moves documents through the worker)."""
    inference = sim.audit.events("inference", deployment_id=DEPLOYMENT)[since:]
    requests = sim.audit.events("request")[since_requests:]
    return {
        "infer_docs": sum(int(e.data.get("docs", 0)) for e in inference if e.data.get("via") != "ingest"),
        "ingest_docs": sum(
            int(e.data.get("docs", 0)) for e in inference if e.data.get("via") == "ingest" and e.data["status"] == 200
        ),
        "document_requests": sum(1 for e in requests if any(name in str(e.data.get("path")) for name in indices)),
        "infer_requests": sum(1 for e in requests if e.data.get("endpoint") == "infer"),
    }


def _positions(sim: Simulator) -> tuple[int, int]:
    return len(sim.audit.events("inference", deployment_id=DEPLOYMENT)), len(sim.audit.events("request"))


def in_cluster(
    sizes: list[int], runs: int, *, docs_per_allocation: int = 250, seconds_per_doc: float = 0.02
) -> dict[str, Any]:
    """docs/s of ``IndexInferenceOperator`` and ``BatchInferenceOperator`` per started allocation count.

    The batch at ``a`` allocations is ``a x docs_per_allocation`` documents (the same time at capacity); both
    operators get the same documents. docs/s is the operator's ``execute()`` from start to return (for the
    reindex also the Elasticsearch task's own running time); documents through the worker come from the
    simulator's audit log: documents in ``_infer`` requests, and requests to document endpoints.
    """
    from airflow_esml.hooks.ml import ElasticsearchMLHook
    from airflow_esml.operators.index_inference import IndexInferenceOperator
    from airflow_esml.operators.inference import BatchInferenceOperator

    samples: dict[tuple[str, int], list[dict[str, Any]]] = {}
    top = max(sizes)
    nodes = {"ml-1": top // 2 + 1, "ml-2": top // 2 + 1}
    with (
        Simulator(
            ml_nodes=nodes, models=[DEPLOYMENT], load_seconds=0.05, seed=9, infer_seconds_per_doc=seconds_per_doc
        ) as sim,
        _connection(sim),
    ):
        sim.cluster.start_deployment(DEPLOYMENT, number_of_allocations=sizes[0], wait=True)
        hook = ElasticsearchMLHook()
        with sim.client() as es:
            processor = {"model_id": DEPLOYMENT, "input_output": [{"input_field": "text", "output_field": "emb"}]}
            es.ingest.put_pipeline(id="embed", processors=[{"inference": processor}])
            for allocations in sizes:
                texts = [f"benchmark document {i}" for i in range(allocations * docs_per_allocation)]
                source = f"src-{allocations}"
                es.indices.create(index=source)
                for begin in range(0, len(texts), 1000):
                    ops = [
                        x
                        for i in range(begin, min(len(texts), begin + 1000))
                        for x in ({"index": {"_id": str(i)}}, {"text": texts[i]})
                    ]
                    es.bulk(index=source, refresh=True, operations=ops)
            for run in range(runs):
                for allocations in sizes:
                    sim.cluster.update_deployment(DEPLOYMENT, number_of_allocations=allocations)
                    wait_exactly(hook, DEPLOYMENT, allocations)
                    source = f"src-{allocations}"
                    texts = [f"benchmark document {i}" for i in range(allocations * docs_per_allocation)]
                    order = ("index", "batch") if run % 2 == 0 else ("batch", "index")
                    for method in order:
                        dest = f"dst-{allocations}-{run}"
                        positions = _positions(sim)
                        started = time.monotonic()
                        if method == "index":
                            result = IndexInferenceOperator(
                                task_id="embed", source_index=source, dest_index=dest, pipeline="embed",
                                deployment_id=DEPLOYMENT, poll_interval=0.2,
                            ).execute(_context(f"in_cluster_{allocations}_{run}"))  # fmt: skip
                            seconds = time.monotonic() - started
                            progress = result["progress"]
                            done, task_seconds = int(progress["created"]), float(progress["running_seconds"])
                        else:
                            result = BatchInferenceOperator(
                                task_id="infer", deployment_id=DEPLOYMENT, docs=texts, return_results=False
                            ).execute(_context(f"batch_{allocations}_{run}"))
                            seconds = time.monotonic() - started
                            done, task_seconds = int(result["docs"]), float(result["seconds"])
                        if done != len(texts):
                            raise RuntimeError(f"{method} at {allocations} allocations: {done} of {len(texts)} docs")
                        traffic = _worker_traffic(sim, (source, dest), *positions)
                        if method == "index":
                            es.indices.delete(index=dest)
                        samples.setdefault((method, allocations), []).append(
                            {"seconds": seconds, "task_seconds": task_seconds, "docs": done, **traffic}
                        )
        hook.close()
    rows = []
    for allocations in sizes:
        capacity = allocations / seconds_per_doc  # 1 thread per allocation
        row: dict[str, Any] = {"allocations": allocations, "capacity": capacity, "runs": runs}
        for method in ("index", "batch"):
            values = samples[(method, allocations)]
            docs = values[0]["docs"]
            rate = median([docs / v["seconds"] for v in values])
            task_rate = median([docs / v["task_seconds"] for v in values if v["task_seconds"] > 0])
            row[method] = {
                "docs": docs,
                "docs_per_second": rate,
                "of_capacity": rate / capacity,
                "task_docs_per_second": task_rate,
                "task_of_capacity": task_rate / capacity,
                "through_worker": max(v["infer_docs"] for v in values),
                "document_requests": max(v["document_requests"] for v in values),
                "infer_requests": max(v["infer_requests"] for v in values),
                "ingest_docs": max(v["ingest_docs"] for v in values),
            }
        rows.append(row)
    return {"docs_per_allocation": docs_per_allocation, "seconds_per_doc": seconds_per_doc, "rows": rows}
