"""Old import paths of moved modules: importable for one more release, with a deprecation warning.

``import airflow_esml.status`` gives a stand-in module that warns once and hands out the names of
``airflow_esml.core.status`` (the same objects); a module that was split hands out the names of each of its
parts. Names that moved to another module on the way are listed in :data:`RENAMED`. Nothing is imported
until an old path is used. Remove this module, and its call in ``airflow_esml/__init__.py``, in the next
release.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType
from typing import Any

#: old module -> the module(s) that hold its code now, searched in order for each name
MOVED: dict[str, tuple[str, ...]] = {
    "airflow_esml.capacity": ("airflow_esml.core.capacity",),
    "airflow_esml.lease_documents": ("airflow_esml.leases.documents",),
    "airflow_esml.lease_store": ("airflow_esml.leases.store",),
    "airflow_esml.metrics": ("airflow_esml.core.metrics",),
    "airflow_esml.params": ("airflow_esml.core.params",),
    "airflow_esml.plan": ("airflow_esml.core.plan",),
    "airflow_esml.readiness": ("airflow_esml.core.readiness",),
    "airflow_esml.status": ("airflow_esml.core.status",),
    "airflow_esml.steps": ("airflow_esml.core.steps",),
    "airflow_esml.waiting": ("airflow_esml.operators.waiting",),
    # the simulator: its flat modules moved into server/, cluster/ and api/
    "airflow_esml.testing.adaptive": ("airflow_esml.testing.cluster.adaptive", "airflow_esml.testing.api.ml_params"),
    "airflow_esml.testing.cluster_core": ("airflow_esml.testing.cluster.core",),
    "airflow_esml.testing.cluster_state": ("airflow_esml.testing.cluster.state",),
    "airflow_esml.testing.cluster_views": ("airflow_esml.testing.api.ml_reads",),
    "airflow_esml.testing.deployment_params": (
        "airflow_esml.testing.cluster.params",
        "airflow_esml.testing.api.ml_params",
    ),
    "airflow_esml.testing.documents": ("airflow_esml.testing.api.documents",),
    "airflow_esml.testing.es_values": (
        "airflow_esml.testing.cluster.values",
        "airflow_esml.testing.api.request_values",
    ),
    "airflow_esml.testing.faults": ("airflow_esml.testing.server.faults",),
    "airflow_esml.testing.inference": ("airflow_esml.testing.cluster.inference",),
    "airflow_esml.testing.inference_ops": ("airflow_esml.testing.cluster.inference_ops",),
    "airflow_esml.testing.ml_api": ("airflow_esml.testing.api.ml",),
    "airflow_esml.testing.ml_errors": ("airflow_esml.testing.cluster.errors",),
    "airflow_esml.testing.placement": ("airflow_esml.testing.cluster.placement",),
    "airflow_esml.testing.stats": ("airflow_esml.testing.cluster.stats",),
    "airflow_esml.testing.tls": ("airflow_esml.testing.server.tls", "airflow_esml.testing.server.auth"),
}

#: (old module, name) -> "new.module:name", for names that left the module they used to live in
RENAMED: dict[tuple[str, str], str] = {
    ("airflow_esml.capacity", "CAPACITY_POLICIES"): "airflow_esml.core.params:CAPACITY_POLICIES",
    ("airflow_esml.capacity", "CapacityPolicy"): "airflow_esml.core.params:CapacityPolicy",
    ("airflow_esml.capacity", "parse_policy"): "airflow_esml.core.params:parse_capacity_policy",
    ("airflow_esml.metrics", "parse_bound"): "airflow_esml.core.params:parse_bound",
    ("airflow_esml.plan", "ADAPTIVE_POLICIES"): "airflow_esml.core.params:ADAPTIVE_POLICIES",
    ("airflow_esml.plan", "AdaptivePolicy"): "airflow_esml.core.params:AdaptivePolicy",
    ("airflow_esml.plan", "DesiredSettings"): "airflow_esml.core.settings:Settings",
    ("airflow_esml.plan", "parse_adaptive"): "airflow_esml.core.params:parse_adaptive",
    ("airflow_esml.steps", "parse_max_step"): "airflow_esml.core.params:parse_max_step",
    ("airflow_esml.waiting", "outcome"): "airflow_esml.core.readiness:outcome",
}


class _MovedModule(ModuleType):
    """Stands in for a moved module: every name is looked up where it lives now."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        where = RENAMED.get((self.__name__, name))
        if where is not None:
            path, _, attribute = where.partition(":")
            return getattr(importlib.import_module(path), attribute)
        for target in MOVED[self.__name__]:
            module = importlib.import_module(target)
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")

    def __dir__(self) -> list[str]:
        renamed = [name for (old, name) in RENAMED if old == self.__name__]
        names = {name for target in MOVED[self.__name__] for name in dir(importlib.import_module(target))}
        return sorted(names | set(renamed))


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old paths of :data:`MOVED` and loads a :class:`_MovedModule` for each."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return _MovedModule(spec.name, f"Moved to {' and '.join(MOVED[spec.name])}; gone in the next release.")

    def exec_module(self, module: ModuleType) -> None:
        warnings.warn(
            f"{module.__name__} is deprecated and will be removed in the next release; "
            f"import from {' or '.join(MOVED[module.__name__])} instead",
            DeprecationWarning,
            stacklevel=2,
        )


def install() -> None:
    """Let the old paths be imported (idempotent)."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
