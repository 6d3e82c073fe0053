"""What a DAG file pays at parse time, and the one rule for imports inside functions.

The rule: a module of the provider imports another of its modules inside a function only when that module
loads the ``elasticsearch`` client or Airflow's trigger machinery (:data:`LAZY`). Everything else, the pure
``core`` included, is imported at the top of the module.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "airflow_esml"

DAG_FACING = (
    "airflow_esml.operators.deployment",
    "airflow_esml.sensors.deployment",
    "airflow_esml.operators.inference",
    "airflow_esml.operators.lease",
    "airflow_esml.operators.reservation",
    "airflow_esml.operators.index_inference",
    "airflow_esml.lifecycle",
)
#: the provider's modules that may be (and are only) imported inside functions, and what makes them heavy
LAZY = {
    "airflow_esml.hooks.ml": "elasticsearch",
    "airflow_esml.hooks.inference": "elasticsearch",
    "airflow_esml.hooks.retry": "elasticsearch",
    "airflow_esml.hooks.tasks": "elasticsearch",
    "airflow_esml.leases.store": "elasticsearch",
    "airflow_esml.triggers.deployment": "airflow.triggers.base",
    "airflow_esml.triggers.lease": "airflow.triggers.base",
    "airflow_esml.triggers.task": "airflow.triggers.base",
}


def start_importing(*modules: str) -> subprocess.Popen[str]:
    """A fresh interpreter that imports ``modules`` and prints every module then loaded."""
    code = f"import json, sys\nfor m in {modules!r}: __import__(m)\nprint(json.dumps(sorted(sys.modules)))"
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def loaded(process: subprocess.Popen[str]) -> set[str]:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return set(json.loads(out.strip().splitlines()[-1]))


def loaded_after_importing(*modules: str) -> set[str]:
    return loaded(start_importing(*modules))


def test_importing_operators_sensor_lifecycle_and_leases_loads_no_client() -> None:
    modules = loaded_after_importing(*DAG_FACING, "airflow_esml.leases")
    assert set(DAG_FACING) <= modules
    assert sorted(m for m in modules if m == "elasticsearch" or m.startswith("elasticsearch.")) == []
    assert sorted(modules & set(LAZY)) == []


def test_each_lazy_module_is_heavy() -> None:
    processes = {module: start_importing(module) for module in LAZY}  # side by side: each pays Airflow's import
    for module, process in processes.items():
        assert LAZY[module] in loaded(process), f"{module} does not load {LAZY[module]}: import it at the top"


def function_level_imports() -> dict[str, set[str]]:
    """Provider module -> the provider modules it imports inside a function (``TYPE_CHECKING`` blocks aside)."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "testing" in path.relative_to(PACKAGE).parts:
            continue
        tree = ast.parse(path.read_text())
        for function in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for node in ast.walk(function):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
                own = {n for n in names if n.startswith("airflow_esml")}
                if own:
                    found.setdefault(str(path.relative_to(PACKAGE.parent)), set()).update(own)
    return found


def test_only_heavy_modules_are_imported_inside_functions() -> None:
    found = function_level_imports()
    assert found, "the scan found no import inside a function at all"
    light = {where: sorted(names - set(LAZY)) for where, names in found.items() if names - set(LAZY)}
    assert light == {}
