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

from benchmarks import inference, parse, report, waiting
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
)


def run_all(sizes: Sizes, log: Any = print) -> dict[str, Any]:
    """Every measurement; returns the raw numbers."""
    results: dict[str, Any] = {"machine": machine(), "runs": sizes.runs}
    log("1/4 cluster load while waiting")
    results["load"] = waiting.cluster_load(sizes.load_sizes, sizes.per_trigger_cap, sizes.runs, sizes.load_seconds)
    log("2/4 readiness lag")
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
    log("3/4 DAG parse cost")
    results["imports"] = parse.import_cost(sizes.parse_runs)
    results["dags"] = parse.dag_parse_cost(sizes.parse_runs)
    log("4/4 batch inference")
    results["inference"] = inference.batch_inference(sizes.batch_sizes, sizes.runs, sizes.batch_docs, sizes.naive_docs)
    return results


def render(results: dict[str, Any], seconds: float) -> str:
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        report.machine_section(results["machine"], date, results["runs"], seconds),
        report.load_section(results["load"]),
        report.lag_section(results["lag"]),
        report.parse_section(results["imports"], results["dags"]),
        report.inference_section(results["inference"]),
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
