"""A tiny run of every benchmark code path: the structure of the numbers and of BENCHMARKS.md, never timings."""

from __future__ import annotations

from pathlib import Path

from benchmarks import __main__ as bench
from benchmarks import batch, inference, overlap, parse, waiting
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
        "utilisation": batch.utilisation(1, docs=20, seconds_per_doc=0.02, load_seconds=0.3, poll_every=0.5),
        "in_cluster": batch.in_cluster([1, 2], runs=1, docs_per_allocation=6),
        "overlap": overlap.overlap([0.0, 0.4], runs=1, load_seconds=0.2, docs=12),
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

    utilisation = results["utilisation"]
    for key in ("provider", "hand_wired"):
        run = utilisation[key]
        assert run["runs"] == 1 and run["allocation_seconds"] > 0 and 0 < run["utilisation"] <= 1
        assert run["loading"] > 0 and run["busy"] > 0 and run["held_seconds"] > 0
        assert run["simulator_busy"] == 20 * 0.02  # the simulator inferred every document of the batch once
    in_cluster = results["in_cluster"]["rows"]
    assert [r["allocations"] for r in in_cluster] == [1, 2]
    for row in in_cluster:
        docs = 6 * row["allocations"]
        assert row["index"]["docs"] == row["batch"]["docs"] == docs
        assert row["index"]["through_worker"] == 0 and row["index"]["document_requests"] == 0
        assert row["index"]["ingest_docs"] == docs and row["batch"]["through_worker"] == docs
        assert row["index"]["docs_per_second"] > 0 and row["batch"]["docs_per_second"] > 0
    overlaps = results["overlap"]["rows"]
    assert [r["prep"] for r in overlaps] == [0.0, 0.4]
    assert all(r["sequential"] > 0 and r["overlapped"] > 0 and r["overlapped_vs_ideal"] > 0 for r in overlaps)

    text = bench.render(results, seconds=1.0)
    assert "written (warm)" in text
    for heading in ("# Benchmarks", "## 1. Cluster load", "## 2. Readiness lag", "## 3. DAG parse", "## 4. Batch"):
        assert heading in text
    for heading in ("## 5. Capacity utilisation", "## 6. Batch inference inside", "## 7. DAG wall time"):
        assert heading in text
    assert text.index("## 4. Batch") < text.index("## 5. Capacity") < text.index("## 6.") < text.index("## 7.")
    assert "| hand-wired |" in text and "| 0.4 |" in text
    assert "| shared poller | 2 |" in text and str(lag["seeds"][0]) in text and "tiny_dag.py" in text
