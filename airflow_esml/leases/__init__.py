"""Deployment leases: several DAG runs share one deployment, and the last one out restores its baseline.

The pure modules: :mod:`~airflow_esml.leases.document` is the lease document, built from
:mod:`~airflow_esml.leases.lease` (a lease, the document's lock, lease ids) and :mod:`~airflow_esml.leases.reaped`
(reap records, what a renewal finds), with the shares of the capacity held from :mod:`~airflow_esml.leases.shares`;
:mod:`~airflow_esml.leases.decisions` decides the deployment's target from it, and
:mod:`~airflow_esml.leases.reservation` names the leases of time-window reservations. The I/O:
:mod:`~airflow_esml.leases.documents` reads and writes the lease documents, :mod:`~airflow_esml.leases.lock` takes
a document's lock, and :mod:`~airflow_esml.leases.store` runs each operation under it and says what it did
(:mod:`~airflow_esml.leases.outcome`). See ``docs/leases.md``. The names below are importable from here;
``LeaseStore`` and ``LeaseOutcome`` load on first use, the store since it brings the ``elasticsearch`` client.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from airflow_esml.core.settings import Settings
from airflow_esml.leases.decisions import DRIFT_HISTORY, Decision, Drift, decide, goal_settings
from airflow_esml.leases.document import LeaseDoc
from airflow_esml.leases.lease import Lease, Lock, lease_id_for

if TYPE_CHECKING:
    from airflow_esml.leases.outcome import LeaseOutcome
    from airflow_esml.leases.store import LeaseStore

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
    if name == "LeaseStore":
        return getattr(importlib.import_module("airflow_esml.leases.store"), name)
    if name == "LeaseOutcome":
        return getattr(importlib.import_module("airflow_esml.leases.outcome"), name)
    if name == "update_body":
        warnings.warn(
            "airflow_esml.leases.update_body is deprecated and will be removed in the next release; "
            "use airflow_esml.core.settings.Settings.update_body",
            DeprecationWarning,
            stacklevel=2,
        )
        return lambda goal, status: goal.update_body(status)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
