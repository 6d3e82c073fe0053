"""The Airflow side of waiting for allocations, shared by UpdateDeploymentOperator and AllocationsStartedSensor.

Both check once, then either poll in the worker or defer to :class:`AllocationsStartedTrigger`; all three
decide with :func:`airflow_esml.readiness.assess`.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

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


class WaitingTask(Protocol):
    """What :func:`wait_or_defer` needs of an operator."""

    deployment_id: str
    elasticsearch_conn_id: str
    deferrable: bool
    poll_interval: float

    @property
    def hook(self) -> ElasticsearchMLHook: ...

    @property
    def log(self) -> Any: ...

    def defer(self, *, trigger: Any, method_name: str, kwargs: dict[str, Any] | None, timeout: timedelta) -> None: ...


def wait_or_defer(
    task: WaitingTask, needed: int | None, window: WaitWindow, *, method_name: str, kwargs: dict[str, Any]
) -> Verdict:
    """Check once; if not done, defer to the trigger (resuming in ``method_name`` with ``kwargs``) or poll.

    Returns the verdict of a wait that ended in the worker; deferring leaves through ``task.defer``.
    """
    verdict = check_now(task.hook, task.deployment_id, needed, window)
    if not verdict.done and task.deferrable:
        task.log.info("%s; deferring", verdict.message)
        task.defer(
            trigger=make_trigger(
                deployment_id=task.deployment_id,
                elasticsearch_conn_id=task.elasticsearch_conn_id,
                min_allocations=needed,
                window=window,
                poll_interval=task.poll_interval,
            ),
            method_name=method_name,
            kwargs=kwargs,
            timeout=timedelta(seconds=window.remaining() + 60),
        )
    if not verdict.done:
        verdict = wait_in_worker(task.hook, task.deployment_id, needed, window, task.poll_interval, task.log)
    task.log.info("%s", verdict.message)
    return verdict
