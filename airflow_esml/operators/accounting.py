"""Where capacity windows open and close in tasks: the stats snapshots, the log line and Airflow's ``Stats``.

The figures are computed by :mod:`airflow_esml.core.accounting`; this module reads the snapshots through the
hook and reports. Accounting never fails a task: a snapshot that cannot be read is logged as a WARNING and
the window goes unreported.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_esml.core import accounting
    from airflow_esml.core.accounting import CapacityUsage
    from airflow_esml.hooks.ml import ElasticsearchMLHook
    from airflow_esml.leases.store import LeaseStore

log = logging.getLogger(__name__)

#: the XCom key (of the result dict) that holds a window's opening record, and the one of the closing figures
START_KEY = "accounting"
USAGE_KEY = "capacity_usage"
#: the XCom key under which a wait records when the allocations were seen started (epoch seconds)
READY_AT_KEY = "allocations_started_at"


def open_window(
    hook: ElasticsearchMLHook, deployment_id: str, *, baseline: int | None, allocations: int | None
) -> dict[str, Any] | None:
    """The opening record of a window (for the XCom result), or None when nothing is held above ``baseline``
    or the deployment's stats cannot be read."""
    from airflow_esml.core import accounting

    if baseline is None or allocations is None or allocations <= baseline:
        return None
    try:
        status = hook.get_deployment(deployment_id)
    except Exception as exc:
        log.warning("%s: no capacity accounting for this window (stats not readable: %s)", deployment_id, exc)
        return None
    start = accounting.open_window(status, baseline=baseline, allocations=allocations, now=time.time())
    return start.to_dict()


def end_snapshot(hook: ElasticsearchMLHook, deployment_id: str) -> dict[str, accounting.NodeWork] | None:
    """The deployment's work now, read before the capacity goes (a node that leaves takes its counts with it)."""
    from airflow_esml.core import accounting

    try:
        return accounting.snapshot(hook.get_deployment(deployment_id))
    except Exception as exc:
        log.warning("%s: no capacity accounting for this window (stats not readable: %s)", deployment_id, exc)
        return None


def close_window(
    record: Mapping[str, Any] | None,
    end: Mapping[str, accounting.NodeWork] | None,
    *,
    ready_at: float | None = None,
    task_log: logging.Logger | Any = None,
    ended_at: float | None = None,
    share: tuple[float, float] | None = None,
) -> dict[str, Any] | None:
    """Close the window of ``record`` at ``ended_at`` (default now): log one line, emit the figures through
    ``Stats``, return them for the XCom result (None when the window was not recorded).

    :param share: a lease's ``(share, span)``: see :func:`airflow_esml.core.accounting.close_window`.
    """
    from airflow_esml.core import accounting

    if not record or end is None:
        return None
    ended = time.time() if ended_at is None else ended_at
    try:
        start = accounting.WindowStart.from_dict(record)
        usage = accounting.close_window(start, end, ended, ready_at=ready_at, share=share)
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("capacity accounting skipped: the window's record is not readable (%s)", exc)
        return None
    (task_log or log).info("%s: %s", usage.deployment_id, usage.describe())
    emit(usage)
    return usage.to_dict()


def emit(usage: CapacityUsage) -> None:
    """Send ``usage`` to Airflow's ``Stats`` (StatsD or OpenTelemetry, as configured), tagged by deployment."""
    from airflow.providers.common.compat.sdk import Stats

    from airflow_esml.core import accounting

    tags = {"deployment_id": usage.deployment_id}
    try:
        for name, value in usage.metrics().items():
            Stats.gauge(name, value, tags=tags)  # floats: StatsD and OTel take them
        Stats.incr(accounting.WINDOWS_METRIC, tags=tags)
    except Exception as exc:  # a metrics backend that fails must not fail the teardown
        log.warning("capacity metrics not sent: %s", exc)


def ready_at_from(context: Any, task_id: str | None) -> float | None:
    """When the wait task ``task_id`` of this run saw the allocations started (None if unknown)."""
    if not task_id:
        return None
    try:
        value = context["ti"].xcom_pull(task_ids=task_id, key=READY_AT_KEY)
    except Exception:
        return None
    return float(value) if isinstance(value, (int, float)) else None


def pull_record(context: Any, task_id: str | None) -> Mapping[str, Any] | None:
    """The opening record in the XCom result of ``task_id`` of this run (None if there is none)."""
    if not task_id:
        return None
    try:
        result = context["ti"].xcom_pull(task_ids=task_id)
    except Exception as exc:
        log.warning("capacity accounting skipped: the XCom of %s is not readable (%s)", task_id, exc)
        return None
    record = result.get(START_KEY) if isinstance(result, Mapping) else None
    return record if isinstance(record, Mapping) else None


# -- windows held by leases (scaled_deployment, the lease operators, reservations) ---------------------------

#: the key of a lease's ``owner`` that holds its window's opening record (a JSON string: node ids are not
#: field names in the lease index's mapping)
LEASE_OWNER_KEY = "capacity_window"


def lease_opening(hook: ElasticsearchMLHook, store: LeaseStore, deployment_id: str, lease_id: str) -> str | None:
    """The opening record to keep in the lease's ``owner`` (a retry keeps the one its first try recorded).

    The baseline and the allocations are filled in when the window closes (the release knows them).
    """
    from airflow_esml.core import accounting

    try:
        doc = store.read(deployment_id)
        lease = doc.lease(lease_id) if doc else None
        if lease is not None and lease.owner.get(LEASE_OWNER_KEY):
            return str(lease.owner[LEASE_OWNER_KEY])
        status = hook.get_deployment(deployment_id)
    except Exception as exc:
        log.warning("%s: no capacity accounting for this lease (stats not readable: %s)", deployment_id, exc)
        return None
    start = accounting.open_window(status, baseline=0, allocations=0, now=time.time())
    return json.dumps(start.to_dict(), separators=(",", ":"))


def lease_ending(
    hook: ElasticsearchMLHook, store: LeaseStore, deployment_id: str, lease_id: str
) -> tuple[dict[str, Any], int, dict[str, accounting.NodeWork]] | None:
    """Before a release: the lease's opening record, its allocations and the deployment's work now."""
    try:
        doc = store.read(deployment_id)
    except Exception as exc:
        log.warning("%s: no capacity accounting for this lease (%s)", deployment_id, exc)
        return None
    lease = doc.lease(lease_id) if doc else None
    text = lease.owner.get(LEASE_OWNER_KEY) if lease else None
    if lease is None or not text:
        return None
    try:
        record = json.loads(text)
    except (TypeError, ValueError):
        return None
    end = end_snapshot(hook, deployment_id)
    return (record, lease.allocations, end) if end is not None else None


def close_lease_window(
    ending: tuple[dict[str, Any], int, dict[str, accounting.NodeWork]] | None,
    released: Mapping[str, Any],
    *,
    ready_at: float | None = None,
    task_log: logging.Logger | Any = None,
) -> dict[str, Any] | None:
    """After a release: close the lease's window; the baseline is the released deployment's baseline.

    The window runs from the lease's acquire to its release as the lease document saw them, and its
    allocation-seconds are the lease's share of what the deployment held above the baseline (overlapping leases
    share the allocations they held together; docs/accounting.md). A lease from a document written before the
    shares were kept is counted as if it held its allocations alone.
    """
    from airflow_esml.core.settings import Settings
    from airflow_esml.leases.shares import held_floor

    if ending is None:
        return None
    record, allocations, end = ending
    baseline = released.get("baseline") or released.get("original_baseline")
    floor = held_floor(Settings.from_dict(baseline)) if baseline else 0
    record = {**record, "baseline": floor, "allocations": max(int(allocations), floor)}
    lease = released.get("released") or {}
    if lease.get("share") is None or lease.get("span") is None or lease.get("released_at") is None:
        return close_window(record, end, ready_at=ready_at, task_log=task_log)
    record["started_at"] = float(lease["acquired_at"])
    share = (float(lease["share"]), float(lease["span"]))
    ended = float(lease["released_at"])
    return close_window(record, end, ready_at=ready_at, task_log=task_log, ended_at=ended, share=share)
