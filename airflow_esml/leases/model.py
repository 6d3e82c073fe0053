"""The lease model's names, where they were before it was split by role.

The lease document is :mod:`~airflow_esml.leases.document`, its parts :mod:`~airflow_esml.leases.lease` and
:mod:`~airflow_esml.leases.reaped`, the shares of held capacity :mod:`~airflow_esml.leases.shares`, and what is
decided from a document :mod:`~airflow_esml.leases.decisions`. Nothing in the provider imports this module.
"""

from __future__ import annotations

from airflow_esml.leases.decisions import (
    DRIFT_HISTORY,
    Decision,
    Drift,
    adaptive_refusal,
    decide,
    goal_settings,
    held_by_leases,
)
from airflow_esml.leases.document import LeaseDoc
from airflow_esml.leases.lease import Lease, Lock, lease_id_for, when, with_installation
from airflow_esml.leases.reaped import (
    REAPED_HISTORY,
    REAPED_MAX_AGE,
    Reaped,
    Renewal,
    RenewalState,
    find_reaped,
    keep_reaped,
    missing_lease,
)
from airflow_esml.leases.shares import capacity_shares, held_floor

__all__ = [
    "DRIFT_HISTORY",
    "REAPED_HISTORY",
    "REAPED_MAX_AGE",
    "Decision",
    "Drift",
    "Lease",
    "LeaseDoc",
    "Lock",
    "Reaped",
    "Renewal",
    "RenewalState",
    "adaptive_refusal",
    "capacity_shares",
    "decide",
    "find_reaped",
    "goal_settings",
    "held_by_leases",
    "held_floor",
    "keep_reaped",
    "lease_id_for",
    "missing_lease",
    "when",
    "with_installation",
]
