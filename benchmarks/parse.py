"""Table 3: what the provider adds to DAG parsing, measured in fresh interpreters."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, median

PROVIDER_MODULES = (
    "airflow_esml.operators.deployment",
    "airflow_esml.sensors.deployment",
    "airflow_esml.operators.inference",
)

_IMPORT_CODE = """
import json, sys, time
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
for name in {modules!r}:
    __import__(name)
t2 = time.perf_counter()
print(json.dumps({{"sdk": t1 - t0, "added": t2 - t1, "client": "elasticsearch" in sys.modules}}))
"""

_DAG_CODE = """
import importlib.util, json, sys, time
import airflow.sdk
t0 = time.perf_counter()
spec = importlib.util.spec_from_file_location("bench_dag", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
t1 = time.perf_counter()
print(json.dumps({{"parse": t1 - t0, "client": "elasticsearch" in sys.modules}}))
"""


def _run(code: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def import_cost(runs: int) -> dict[str, Any]:
    """Median time ``import`` of the operator and sensor modules adds over ``import airflow.sdk``."""
    samples = [_run(_IMPORT_CODE.format(modules=PROVIDER_MODULES)) for _ in range(runs)]
    return {
        "runs": runs,
        "modules": list(PROVIDER_MODULES),
        "sdk_ms": median([s["sdk"] * 1000 for s in samples]),
        "added_ms": median([s["added"] * 1000 for s in samples]),
        "client_imported": any(s["client"] for s in samples),
    }


def dag_parse_cost(runs: int, folder: Path = ROOT / "example_dags") -> list[dict[str, Any]]:
    """Median time to execute each example DAG file after ``import airflow.sdk`` (fresh interpreter each run)."""
    rows = []
    for path in sorted(folder.glob("*.py")):
        samples = [_run(_DAG_CODE.format(path=str(path))) for _ in range(runs)]
        rows.append(
            {
                "file": path.name,
                "runs": runs,
                "parse_ms": median([s["parse"] * 1000 for s in samples]),
                "client_imported": any(s["client"] for s in samples),
            }
        )
    return rows
