"""The Airflow side of waiting for allocations, shared by UpdateDeploymentOperator and AllocationsStartedSensor.

Both check once, then either poll in the worker or defer to :class:`AllocationsStartedTrigger`; all three
decide with :func:`airflow_esml.readiness.assess`.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from airflow_esml.exceptions import DeploymentFailedError, DeploymentNotFoundError, TransientRequestError
from airflow_esml.readiness import Verdict, WaitWindow, assess

if TYPE_CHECKING:
    from airflow_esml.hooks.ml import ElasticsearchMLHook
    from airflow_esml.triggers.deployment import AllocationsStartedTrigger


def check_now(
    hook: ElasticsearchMLHook, deployment_id: str, min_allocations: int | None, window: WaitWindow
) -> Verdict:
    """One look at the deployment; a request that kept failing transiently counts as "still waiting"."""
    try:
        status = hook.get_deployment(deployment_id)
    except TransientRequestError as exc:
        return Verdict("waiting", f"{deployment_id}: {exc}; will poll again")
    except DeploymentNotFoundError as exc:  # other errors (credentials, TLS) keep their own type
        return Verdict("failed", str(exc))
    return assess(status, min_allocations, progress=window.progress())


def wait_in_worker(
    hook: ElasticsearchMLHook,
    deployment_id: str,
    min_allocations: int | None,
    window: WaitWindow,
    poll_interval: float,
    log: logging.Logger | Any,
) -> Verdict:
    """Poll until the allocations are started, the deployment fails, or the window closes."""
    while True:
        verdict = check_now(hook, deployment_id, min_allocations, window)
        log.info("%s", verdict.message)
        if verdict.done:
            return verdict
        if window.expired():
            return window.timed_out(verdict)
        time.sleep(min(poll_interval, window.remaining()))


def make_trigger(
    *,
    deployment_id: str,
    elasticsearch_conn_id: str,
    min_allocations: int | None,
    window: WaitWindow,
    poll_interval: float,
) -> AllocationsStartedTrigger:
    from airflow_esml.triggers.deployment import AllocationsStartedTrigger  # not at DAG-parse time

    return AllocationsStartedTrigger(
        deployment_id=deployment_id,
        elasticsearch_conn_id=elasticsearch_conn_id,
        min_allocations=min_allocations,
        started_at=window.started_at,
        end_time=window.end_time,
        poll_interval=poll_interval,
    )


def outcome(verdict: Verdict, timeout_error: type[Exception]) -> dict[str, Any] | None:
    """The status dict of a successful wait; raises for a failed or timed-out one."""
    if verdict.outcome == "failed":
        raise DeploymentFailedError(verdict.message)
    if verdict.outcome == "timeout":
        raise timeout_error(verdict.message)
    return verdict.status.to_dict() if verdict.status else None
