"""Wait here or defer: the waiting shared by UpdateDeploymentOperator, the lease acquire and AllocationsStartedSensor.

Each checks once, then either polls in the worker or defers to
:class:`~airflow_esml.triggers.deployment.AllocationsStartedTrigger`; all of them decide with
:func:`airflow_esml.core.readiness.judge`. A wait in the worker logs one INFO line each time what it sees
changes (:class:`ProgressLog`), not one per poll. The hook and the trigger load only when a task runs.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from airflow_esml.exceptions import AllocationsTimeoutError
from airflow_esml.operators.base import ElasticsearchMLTaskMixin

if TYPE_CHECKING:
    from airflow.triggers.base import BaseTrigger

    from airflow_esml.core.readiness import Verdict, WaitWindow
    from airflow_esml.hooks.ml import ElasticsearchMLHook
    from airflow_esml.triggers.deployment import AllocationsStartedTrigger

#: the elapsed time in a progress line (``, 41s of 600s``: :meth:`WaitWindow.progress`), new at every poll
_PROGRESS = r", \d+(?:\.\d+)?s of \d+(?:\.\d+)?s"  # compiled at first use (re caches it), not on import


def observed(verdict: Verdict) -> tuple[str, str]:
    """What a look saw, without when: its outcome and its line less the elapsed time."""
    return verdict.outcome, re.sub(_PROGRESS, "", verdict.message)


class ProgressLog:
    """Logs the verdicts of a wait at INFO, one line each time what was seen changes, not one per poll.

    For example ``my-e5: 2/4 allocations started (node-a started x2, node-b starting), 41s of 600s`` is
    logged once, and again only when an allocation starts, a node changes state, or an error comes or goes.

    :param log: the task's logger.
    """

    def __init__(self, log: logging.Logger | Any) -> None:
        self.log = log
        self.last: tuple[str, str] | None = None

    def __call__(self, verdict: Verdict) -> bool:
        """Log ``verdict`` if it differs from the last one logged; return whether it did."""
        seen = observed(verdict)
        if seen == self.last:
            return False
        self.last = seen
        self.log.info("%s", verdict.message)
        return True


def check_now(
    hook: ElasticsearchMLHook,
    deployment_id: str,
    min_allocations: int | None,
    window: WaitWindow,
    last: Verdict | None = None,
) -> Verdict:
    """One look at the deployment, bounded by the window's end; errors other than
    :data:`~airflow_esml.core.readiness.WAIT_ERRORS` raise.

    The stats request's timeout and retries are capped by the time left in ``window``, so a cluster that
    accepts connections but never answers ends the look at the window's end (a look at or after the end
    still gets :data:`~airflow_esml.hooks.retry.MIN_ATTEMPT_TIMEOUT`), as a "waiting" verdict that says the
    cluster did not answer.

    :param last: the previous look, whose status a verdict on an error carries on (none: no status yet).
    """
    from airflow_esml.core.readiness import WAIT_ERRORS, Verdict, judge

    try:
        result: Any = hook.get_deployment(deployment_id, deadline=window.end_time)
    except WAIT_ERRORS as exc:
        result = exc
    if last is None:
        last = Verdict("waiting", "no status yet")
    return judge(deployment_id, result, min_allocations, window, last)


def wait_in_worker(
    hook: ElasticsearchMLHook,
    deployment_id: str,
    min_allocations: int | None,
    window: WaitWindow,
    poll_interval: float,
    log: logging.Logger | Any,
    first: Verdict | None = None,
) -> Verdict:
    """Poll until the allocations are started, the deployment fails, or the window closes.

    Ends within the window plus one short last look, even when the cluster does not answer. Logs the first
    look, each change (:class:`ProgressLog`) and the end, at INFO.

    :param first: the verdict of a look just taken (the wait then starts with a pause, not another look).
    """
    progress = ProgressLog(log)
    verdict = first or check_now(hook, deployment_id, min_allocations, window)
    while True:
        progress(verdict)
        if verdict.done:
            return verdict
        if window.expired():
            verdict = window.timed_out(verdict)
            progress(verdict)
            return verdict
        time.sleep(min(poll_interval, window.remaining()))
        verdict = check_now(hook, deployment_id, min_allocations, window, verdict)  # an error keeps the status


def make_trigger(
    *,
    deployment_id: str,
    elasticsearch_conn_id: str,
    min_allocations: int | None,
    window: WaitWindow,
    poll_interval: float,
) -> AllocationsStartedTrigger:
    """The trigger that waits for ``min_allocations`` within ``window``."""
    from airflow_esml.triggers.deployment import AllocationsStartedTrigger  # loads airflow.triggers.base

    return AllocationsStartedTrigger(
        deployment_id=deployment_id,
        elasticsearch_conn_id=elasticsearch_conn_id,
        min_allocations=min_allocations,
        started_at=window.started_at,
        end_time=window.end_time,
        poll_interval=poll_interval,
    )


class AllocationsWaitMixin(ElasticsearchMLTaskMixin):
    """Wait for a deployment's allocations in the worker, or defer the wait to the triggerer.

    For operators with ``deployment_id``, ``deferrable`` and ``poll_interval``; the method named in a
    deferral reads the trigger's event back with :meth:`resume_verdict`.
    """

    deployment_id: str
    deferrable: bool
    poll_interval: float
    timeout: float
    log: Any
    #: what a wait that ran out of time raises
    timeout_error: type[Exception] = AllocationsTimeoutError

    if TYPE_CHECKING:  # provided by BaseOperator

        def defer(
            self,
            *,
            trigger: BaseTrigger,
            method_name: str,
            kwargs: dict[str, Any] | None = None,
            timeout: timedelta | int | float | None = None,
        ) -> NoReturn: ...

    @property
    def wait_interval(self) -> float:
        """Seconds between two looks at the deployment: ``poll_interval``."""
        return float(self.poll_interval)

    def defer_wait(self, needed: int | None, window: WaitWindow, *, method_name: str, kwargs: dict[str, Any]) -> None:
        """Defer to the trigger until the window's end (plus a minute for the trigger's own timeout event)."""
        self.defer(
            trigger=make_trigger(
                deployment_id=self.hook.target(self.deployment_id).deployment_id,  # the trigger reads its stats
                elasticsearch_conn_id=self.elasticsearch_conn_id,
                min_allocations=needed,
                window=window,
                poll_interval=self.wait_interval,
            ),
            method_name=method_name,
            kwargs=kwargs,
            timeout=timedelta(seconds=window.remaining() + 60),
        )

    def wait_or_defer(
        self, needed: int | None, window: WaitWindow, *, method_name: str, kwargs: dict[str, Any]
    ) -> Verdict:
        """Check once; if not done, defer (resuming in ``method_name`` with ``kwargs``) or poll here.

        Returns the verdict of a wait that ended in the worker; deferring leaves through ``defer``.
        """
        verdict = check_now(self.hook, self.deployment_id, needed, window)
        if verdict.done:
            self.log.info("%s", verdict.message)
            return verdict
        if self.deferrable:
            self.log.info("%s; deferring", verdict.message)
            self.defer_wait(needed, window, method_name=method_name, kwargs=kwargs)
        interval = self.wait_interval
        return wait_in_worker(self.hook, self.deployment_id, needed, window, interval, self.log, first=verdict)

    def resume_verdict(self, event: dict[str, Any] | None) -> Verdict:
        """The verdict of the trigger's event, logged."""
        from airflow_esml.core.readiness import verdict_from_event

        verdict = verdict_from_event(event)
        self.log.info("%s", verdict.message)
        return verdict

    def wait_for_allocations(self, needed: int | None, *, kwargs: dict[str, Any]) -> dict[str, Any] | None:
        """Wait up to ``timeout`` here, or defer and resume in ``execute_complete`` with ``kwargs``.

        Returns the final status dict; raises for a failed deployment or a timeout.
        """
        from airflow_esml.core.readiness import WaitWindow, outcome

        verdict = self.wait_or_defer(
            needed, WaitWindow.starting_now(self.timeout), method_name="execute_complete", kwargs=kwargs
        )
        return outcome(verdict, self.timeout_error)

    def resumed_status(self, event: dict[str, Any] | None) -> dict[str, Any] | None:
        """The final status dict of a deferred wait, from the trigger's event; raises as the wait would."""
        from airflow_esml.core.readiness import outcome

        return outcome(self.resume_verdict(event), self.timeout_error)
