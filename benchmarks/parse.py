"""Table 3: what the provider adds to DAG parsing, measured in fresh interpreters.

The import cost is measured side by side, run by run, for this tree and for the provider as it was before
the sub-package layout (``BEFORE``, taken from git), so the table shows what the layout changed.
"""

from __future__ import annotations

import io
import json
import os
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


def _env(*, bytecode: bool) -> dict[str, str]:
    """The child's environment: with ``bytecode``, Python reads and writes ``__pycache__``; without, it compiles."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    if not bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _run(code: str, cwd: Path = ROOT, *, bytecode: bool = False) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter whose ``airflow_esml`` is the one under ``cwd``."""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=_env(bytecode=bytecode), check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


@contextmanager
def _copy_of(source: Path) -> Iterator[Path]:
    """A temporary folder holding ``airflow_esml`` as ``source`` has it, without any ``__pycache__``."""
    folder = Path(tempfile.mkdtemp(prefix="esml-parse-now-"))
    try:
        shutil.copytree(source / "airflow_esml", folder / "airflow_esml", ignore=shutil.ignore_patterns("__pycache__"))
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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


def _pairs(code: str, trees: list[Path], runs: int, *, bytecode: bool) -> list[list[float]]:
    """``runs`` samples (ms added) per tree, taken pair by pair so that machine noise hits every tree alike."""
    samples: list[list[float]] = [[] for _ in trees]
    for _ in range(runs):
        for i, tree in enumerate(trees):
            samples[i].append(_run(code, cwd=tree, bytecode=bytecode)["added"] * 1000)
    return samples


def import_cost(runs: int, before: str | None = BEFORE) -> dict[str, Any]:
    """Median time the DAG-facing modules add over ``import airflow.sdk``, now and (pair by pair) ``before``.

    Measured twice: **cold**, compiling every provider module (a dag-processor's first parse, or any Python
    run with ``PYTHONDONTWRITEBYTECODE``), and **warm**, with the bytecode that the first parse wrote (every
    later parse of a long-running dag-processor).
    """
    code = _IMPORT_CODE.format(modules=PROVIDER_MODULES)
    with _copy_of(ROOT) as now, tree_at(before) if before else _no_tree() as old:
        trees = [now] if old is None else [now, old]
        cold = _pairs(code, trees, runs, bytecode=False)
        for tree in trees:  # the first parse writes the bytecode that the warm runs read
            _run(code, cwd=tree, bytecode=True)
        warm = _pairs(code, trees, runs, bytecode=True)
        probe = _run(code, cwd=now, bytecode=True)
    result: dict[str, Any] = {
        "runs": runs,
        "modules": list(PROVIDER_MODULES),
        "sdk_ms": probe["sdk"] * 1000,
        "added_ms": median(cold[0]),
        "warm_ms": median(warm[0]),
        "client_imported": bool(probe["client"]),
        "before": None,
    }
    if old is not None:
        result["before"] = {
            "commit": before,
            "added_ms": median(cold[1]),
            "warm_ms": median(warm[1]),
            "ratio": median(cold[0]) / median(cold[1]),
            "warm_ratio": median(warm[0]) / median(warm[1]),
        }
    return result


@contextmanager
def _no_tree() -> Iterator[None]:
    yield None


def dag_parse_cost(runs: int, folder: Path = ROOT / "example_dags") -> list[dict[str, Any]]:
    """Median time to execute each example DAG file after ``import airflow.sdk`` (fresh interpreter each run),
    with the provider's bytecode written by a first parse, as in a long-running dag-processor."""
    rows = []
    with _copy_of(ROOT) as now:
        for path in sorted(folder.glob("*.py")):
            code = _DAG_CODE.format(path=str(path))
            _run(code, cwd=now, bytecode=True)
            samples = [_run(code, cwd=now, bytecode=True) for _ in range(runs)]
            rows.append(
                {
                    "file": path.name,
                    "runs": runs,
                    "parse_ms": median([s["parse"] * 1000 for s in samples]),
                    "client_imported": any(s["client"] for s in samples),
                }
            )
    return rows
