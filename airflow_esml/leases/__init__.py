"""Deployment leases: several DAG runs share one deployment, and the last one out restores its baseline.

:mod:`~airflow_esml.leases.model` decides (pure), :mod:`~airflow_esml.leases.documents` reads and writes the
lease documents, and :mod:`~airflow_esml.leases.store` runs each operation under the document's lock.
See ``docs/leases.md``. The model's names are importable from here; ``LeaseStore`` loads on first use,
since it brings the ``elasticsearch`` client.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from airflow_esml.core.settings import Settings
from airflow_esml.leases.model import (
    DRIFT_HISTORY,
    Decision,
    Drift,
    Lease,
    LeaseDoc,
    Lock,
    decide,
    goal_settings,
    lease_id_for,
)

if TYPE_CHECKING:
    from airflow_esml.leases.store import LeaseOutcome, LeaseStore

__all__ = [
    "DRIFT_HISTORY",
    "Decision",
    "Drift",
    "Lease",
    "LeaseDoc",
    "LeaseOutcome",
    "LeaseStore",
    "Lock",
    "Settings",
    "decide",
    "goal_settings",
    "lease_id_for",
]


def __getattr__(name: str) -> Any:
    if name in ("LeaseStore", "LeaseOutcome"):
        return getattr(importlib.import_module("airflow_esml.leases.store"), name)
    if name == "update_body":
        warnings.warn(
            "airflow_esml.leases.update_body is deprecated and will be removed in the next release; "
            "use airflow_esml.core.settings.Settings.update_body",
            DeprecationWarning,
            stacklevel=2,
        )
        return lambda goal, status: goal.update_body(status)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
