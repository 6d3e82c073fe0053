"""A tiny run of every benchmark code path: the structure of the numbers and of BENCHMARKS.md, never timings."""

from __future__ import annotations

from pathlib import Path

from benchmarks import __main__ as bench
from benchmarks import inference, parse, waiting
from benchmarks.common import machine


def test_every_benchmark_path_runs_and_renders(tmp_path: Path) -> None:
    dag = tmp_path / "tiny_dag.py"
    dag.write_text("from airflow_esml.operators.inference import BatchInferenceOperator\n")
    results = {
        "machine": machine(),
        "runs": 1,
        "load": waiting.cluster_load([2], per_trigger_cap=1, runs=1, seconds=0.4, warmup=0.3),
        "lag": [waiting.readiness_lag("coalesced", 2, 0.2, runs=1, timeout=20, lead=0.5)],
        "imports": parse.import_cost(1),
        "dags": parse.dag_parse_cost(1, folder=tmp_path),
        "inference": inference.batch_inference([1, 2], runs=1, docs=16, naive_docs=4),
    }
    load = {(r["mode"], r["n"]): r for r in results["load"]["rows"]}
    assert load[("coalesced", 2)]["runs"] == 1 and load[("coalesced", 2)]["requests_per_interval"] >= 0
    assert load[("per_trigger", 2)]["runs"] == 0 and "capped" in load[("per_trigger", 2)]["note"]
    lag = results["lag"][0]
    assert lag["runs"] == 1 and lag["draws"] == 2 and len(lag["seeds"]) == 1
    assert lag["max_lag"] >= lag["p90_lag"] >= lag["median_lag"] > 0
    assert (
        lag["request_seconds"] > 0
        and lag["poll_wait_seconds"] == lag["poll_wait_seconds"]
        and lag["expected_p90_lag"] > lag["expected_median_lag"] > 0.1
    )
    assert lag["requests_per_interval"] > 0
    imports = results["imports"]
    assert imports["client_imported"] is False and imports["added_ms"] > 0 and imports["warm_ms"] > 0
    assert imports["before"] is None or imports["before"]["added_ms"] > 0 < imports["before"]["warm_ms"]
    assert results["dags"][0]["file"] == "tiny_dag.py"
    rows = results["inference"]["rows"]
    assert [r["allocations"] for r in rows] == [1, 2] and rows[0]["time_vs_first"] == 1.0
    assert all(r[m]["docs_per_second"] > 0 for r in rows for m in ("batch", "sequential_chunks", "naive"))

    text = bench.render(results, seconds=1.0)
    assert "written (warm)" in text
    for heading in ("# Benchmarks", "## 1. Cluster load", "## 2. Readiness lag", "## 3. DAG parse", "## 4. Batch"):
        assert heading in text
    assert "| shared poller | 2 |" in text and str(lag["seeds"][0]) in text and "tiny_dag.py" in text
