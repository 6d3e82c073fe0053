"""What a DAG file pays at parse time, and the one rule for imports inside functions (docs/architecture.md).

The rule: a module of the provider imports another of its modules inside a function only when that module

- loads the ``elasticsearch`` client or Airflow's trigger machinery (:data:`LAZY`), anywhere; or
- defines a dataclass (:func:`dataclass_modules`: most of ``core`` and the lease model), and the importer is
  on a DAG file's path (:data:`DAG_PATH`: the operators, the sensor, ``lifecycle.py`` and ``core/params.py``,
  which the constructors call). Python compiles the methods of a dataclass when its module is imported, and a
  DAG file builds tasks without running them.

Everything else is imported at the top of the module.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "airflow_esml"
#: the provider's modules a DAG file loads (and what they import at the top), as paths under the repository
DAG_PATH = (
    "airflow_esml/operators/",
    "airflow_esml/sensors/",
    "airflow_esml/lifecycle.py",
    "airflow_esml/core/params.py",
)

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


def provider_modules() -> dict[str, ast.Module]:
    """Module name -> its parsed source, for every module of the provider but the simulator."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if "testing" not in parts:
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = ast.parse(path.read_text())
    return modules


def defines_dataclass(tree: ast.Module) -> bool:
    """Whether a class at the top of ``tree`` is decorated with ``dataclass`` (bare or called)."""
    for node in tree.body:
        for decorator in node.decorator_list if isinstance(node, ast.ClassDef) else []:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            if isinstance(target, ast.Name) and target.id == "dataclass":
                return True
    return False


def top_level_imports(tree: ast.Module) -> set[str]:
    """The modules ``tree`` imports at its top (``from a.b import c`` counts as ``a.b``)."""
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def dataclass_modules() -> set[str]:
    """The provider's modules that define a dataclass, but for the DAG-facing ones (``lifecycle``'s handle).

    With them, every module of a package whose ``__init__`` imports one of them at its top (``leases/``): importing
    ``airflow_esml.leases.shares``, which defines none, still runs ``airflow_esml/leases/__init__.py`` first.
    """
    modules = provider_modules()
    defining = {name for name, tree in modules.items() if defines_dataclass(tree)}
    packages = {name.rpartition(".")[0] for name in modules}
    loading = {name for name in packages & set(modules) if top_level_imports(modules[name]) & defining}
    inside = {name for name in modules if name.rpartition(".")[0] in loading}
    return (defining | inside) - set(DAG_FACING)


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


def client_modules(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m == "elasticsearch" or m.startswith("elasticsearch."))


def test_importing_operators_sensor_and_lifecycle_loads_no_client_and_no_dataclass_module() -> None:
    dag_file, lease_model = start_importing(*DAG_FACING), start_importing("airflow_esml.leases")  # side by side
    modules = loaded(dag_file)
    assert set(DAG_FACING) <= modules
    assert client_modules(modules) == []
    assert sorted(modules & set(LAZY)) == []
    assert sorted(modules & dataclass_modules()) == []
    assert client_modules(loaded(lease_model)) == []


def test_the_scan_finds_the_dataclass_modules() -> None:
    found = dataclass_modules()
    assert {"airflow_esml.core.status", "airflow_esml.core.settings", "airflow_esml.leases.document"} <= found
    assert "airflow_esml.leases.shares" in found  # no dataclass of its own; its package's __init__ loads them
    assert "airflow_esml.core.params" not in found


def test_each_lazy_module_is_heavy() -> None:
    processes = {module: start_importing(module) for module in LAZY}  # side by side: each pays Airflow's import
    for module, process in processes.items():
        assert LAZY[module] in loaded(process), f"{module} does not load {LAZY[module]}: import it at the top"


def function_level_imports() -> dict[str, set[str]]:
    """Provider module (a path) -> the provider modules it imports inside a function.

    ``from airflow_esml.core import accounting`` imports ``airflow_esml.core.accounting``.
    """
    known = set(provider_modules())
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "testing" in path.relative_to(PACKAGE).parts:
            continue
        tree = ast.parse(path.read_text())
        for function in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for node in ast.walk(function):
                names = []
                if isinstance(node, ast.ImportFrom):
                    names = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known]
                    names = names or [node.module or ""]
                names += [a.name for a in node.names] if isinstance(node, ast.Import) else []
                own = {n for n in names if n.startswith("airflow_esml")}
                if own:
                    found.setdefault(str(path.relative_to(PACKAGE.parent)), set()).update(own)
    return found


def test_only_heavy_modules_are_imported_inside_functions() -> None:
    found = function_level_imports()
    assert found, "the scan found no import inside a function at all"
    dataclasses = dataclass_modules()
    light = {}
    for where, names in found.items():
        allowed = set(LAZY) | (dataclasses if where.startswith(DAG_PATH) else set())
        if names - allowed:
            light[where] = sorted(names - allowed)
    assert light == {}
