"""``python -m benchmarks``: run every benchmark against the simulator and write BENCHMARKS.md.

``--quick`` runs minimal sizes (a smoke run of the code paths, numbers meaningless); ``--output`` changes the
file written; ``--runs`` the number of runs per measurement.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks import batch, inference, overlap, parse, report, waiting
from benchmarks.common import ROOT, machine


@dataclass(frozen=True)
class Sizes:
    runs: int
    load_sizes: list[int]
    per_trigger_cap: int
    load_seconds: float
    lag_runs: int
    lag_n: int
    lag_baseline_interval: float
    parse_runs: int
    batch_sizes: list[int]
    batch_docs: int
    naive_docs: int
    util_runs: int
    util_docs: int
    util_load_seconds: float
    util_poll_every: float
    cluster_sizes: list[int]
    cluster_docs_per_allocation: int
    overlap_runs: int
    overlap_load_seconds: float
    overlap_docs: int


FULL = Sizes(
    runs=3,
    load_sizes=[1, 10, 100, 1000],
    per_trigger_cap=100,
    load_seconds=3.0,
    lag_runs=3,
    lag_n=100,
    lag_baseline_interval=100.0,
    parse_runs=5,
    batch_sizes=[1, 2, 4, 8],
    batch_docs=2400,
    naive_docs=200,
    util_runs=3,
    util_docs=5000,  # 5000 x 50 ms / 4 allocations = 62.5 s of inference
    util_load_seconds=5.0,
    util_poll_every=30.0,
    cluster_sizes=[1, 4, 8],
    cluster_docs_per_allocation=250,  # 5 s at capacity
    overlap_runs=1,
    overlap_load_seconds=5.0,
    overlap_docs=800,  # 800 x 20 ms / 4 allocations = 4 s of inference
)
QUICK = Sizes(
    runs=1,
    load_sizes=[1, 4],
    per_trigger_cap=2,
    load_seconds=1.0,
    lag_runs=1,
    lag_n=4,
    lag_baseline_interval=2.0,
    parse_runs=1,
    batch_sizes=[1, 2],
    batch_docs=40,
    naive_docs=10,
    util_runs=1,
    util_docs=40,
    util_load_seconds=0.5,
    util_poll_every=1.0,
    cluster_sizes=[1, 2],
    cluster_docs_per_allocation=10,
    overlap_runs=1,
    overlap_load_seconds=0.5,
    overlap_docs=20,
)


def run_all(sizes: Sizes, log: Any = print) -> dict[str, Any]:
    """Every measurement; returns the raw numbers."""
    results: dict[str, Any] = {"machine": machine(), "runs": sizes.runs}
    log("1/7 cluster load while waiting")
    results["load"] = waiting.cluster_load(sizes.load_sizes, sizes.per_trigger_cap, sizes.runs, sizes.load_seconds)
    log("2/7 readiness lag")
    results["lag"] = [
        waiting.readiness_lag("coalesced", sizes.lag_n, 1.0, sizes.lag_runs, timeout=30),
        waiting.readiness_lag("coalesced", sizes.lag_n, 0.5, sizes.lag_runs, timeout=30),
        waiting.readiness_lag(
            "per_trigger",
            sizes.lag_n,
            sizes.lag_baseline_interval,
            1,
            timeout=sizes.lag_baseline_interval + 15,
        ),
    ]
    log("3/7 DAG parse cost")
    results["imports"] = parse.import_cost(sizes.parse_runs)
    results["dags"] = parse.dag_parse_cost(sizes.parse_runs)
    log("4/7 batch inference")
    results["inference"] = inference.batch_inference(sizes.batch_sizes, sizes.runs, sizes.batch_docs, sizes.naive_docs)
    log("5/7 capacity utilisation of one DAG run")
    results["utilisation"] = batch.utilisation(
        sizes.util_runs, docs=sizes.util_docs, load_seconds=sizes.util_load_seconds, poll_every=sizes.util_poll_every
    )
    log("6/7 batch inference inside Elasticsearch")
    results["in_cluster"] = batch.in_cluster(
        sizes.cluster_sizes, sizes.runs, docs_per_allocation=sizes.cluster_docs_per_allocation
    )
    log("7/7 scale-up overlapped with the preparation")
    load = sizes.overlap_load_seconds
    results["overlap"] = overlap.overlap(
        [0.0, load / 2, load, 2 * load], sizes.overlap_runs, load_seconds=load, docs=sizes.overlap_docs
    )
    return results


def render(results: dict[str, Any], seconds: float) -> str:
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        report.machine_section(results["machine"], date, results["runs"], seconds),
        report.load_section(results["load"]),
        report.lag_section(results["lag"]),
        report.parse_section(results["imports"], results["dags"]),
        report.inference_section(results["inference"]),
        report.utilisation_section(results["utilisation"]),
        report.in_cluster_section(results["in_cluster"]),
        report.overlap_section(results["overlap"]),
    ]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="minimal sizes: a smoke run, numbers meaningless")
    parser.add_argument("--output", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    args = parser.parse_args(argv)
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    logging.getLogger("airflow_esml").setLevel(logging.WARNING)
    started = time.monotonic()
    results = run_all(QUICK if args.quick else FULL)
    text = render(results, time.monotonic() - started)
    args.output.write_text(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
