"""Table 3: what the provider adds to DAG parsing, measured in fresh interpreters.

The import cost is measured side by side, run by run, for this tree and for the provider as it was before
the sub-package layout (``BEFORE``, taken from git), so the table shows what the layout changed.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, median

#: what a DAG file imports: the operators, the sensor and scaled_deployment (which brings the lease operators)
PROVIDER_MODULES = (
    "airflow_esml.operators.deployment",
    "airflow_esml.sensors.deployment",
    "airflow_esml.operators.inference",
    "airflow_esml.lifecycle",
)
#: the last commit with the flat layout (lazy imports of the pure modules), the "before" of the comparison
BEFORE = "7cea2a9"

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


def _run(code: str, cwd: Path = ROOT) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter whose ``airflow_esml`` is the one under ``cwd``."""
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


@contextmanager
def tree_at(commit: str) -> Iterator[Path | None]:
    """A temporary folder holding ``airflow_esml`` as of ``commit``; None without git or that commit."""
    folder = Path(tempfile.mkdtemp(prefix="esml-parse-before-"))
    try:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", commit, "airflow_esml"], check=True, capture_output=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(folder, filter="data")
    except (OSError, subprocess.CalledProcessError, tarfile.TarError):
        shutil.rmtree(folder, ignore_errors=True)
        yield None
        return
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def import_cost(runs: int, before: str | None = BEFORE) -> dict[str, Any]:
    """Median time the DAG-facing modules add over ``import airflow.sdk``, now and (pair by pair) ``before``."""
    code = _IMPORT_CODE.format(modules=PROVIDER_MODULES)
    with tree_at(before) if before else _no_tree() as old:
        samples, old_samples = [], []
        for _ in range(runs):
            samples.append(_run(code))
            if old is not None:
                old_samples.append(_run(code, cwd=old))
    result: dict[str, Any] = {
        "runs": runs,
        "modules": list(PROVIDER_MODULES),
        "sdk_ms": median([s["sdk"] * 1000 for s in samples]),
        "added_ms": median([s["added"] * 1000 for s in samples]),
        "client_imported": any(s["client"] for s in samples),
        "before": None,
    }
    if old_samples:
        before_ms = median([s["added"] * 1000 for s in old_samples])
        result["before"] = {"commit": before, "added_ms": before_ms, "ratio": result["added_ms"] / before_ms}
    return result


@contextmanager
def _no_tree() -> Iterator[None]:
    yield None


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
