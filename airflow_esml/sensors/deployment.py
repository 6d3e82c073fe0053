"""AllocationsStartedSensor: wait until a deployment's allocations are started."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_esml.core.params import (
    DEFAULT_CONN_ID,
    DEFAULT_POLL_INTERVAL,
    check_id,
    optional_positive_int,
    parse_bound,
    seconds,
)
from airflow_esml.exceptions import DeploymentFailedError
from airflow_esml.operators.accounting import READY_AT_KEY
from airflow_esml.operators.waiting import AllocationsWaitMixin, ProgressLog, check_now

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_esml.core.readiness import WaitWindow


class AllocationsStartedSensor(AllocationsWaitMixin, BaseSensorOperator):
    """Wait until at least ``min_allocations`` allocations of a deployment are started.

    Fails at once, not at the timeout, when the deployment does not exist, is stopping or has failed; the
    error names each failed node with its reason. A poll logs a line such as
    ``my-e5: 2/3 allocations started (node-a started x2, node-b starting), 41s of 600s`` when what it sees
    differs from the poll before (in poke mode; each rescheduled or resumed try logs its first look). ``timeout`` and
    ``soft_fail`` mean the same in poke, reschedule and deferrable modes. The XCom result is the last status.

    :param deployment_id: the deployment to watch, or an inference endpoint id (the deployment it uses is
        watched). (templated)
    :param min_allocations: started allocations needed; default the deployment's whole target
        (``fully_allocated``). (templated)
    :param elasticsearch_conn_id: the Airflow connection to the cluster. (templated)
    :param deferrable: wait in the triggerer instead of a worker slot; defaults to
        ``[operators] default_deferrable``.
    :param max_pending_per_allocation: also wait until the deployment's queued requests per started
        allocation are at most this (e.g. ``2``), so a batch does not start on a deployment still busy with
        earlier work. Checked after the allocations are started; while deferrable, re-checked every
        ``poke_interval`` from a short timer in the triggerer.
    :param poke_interval: seconds (or a timedelta) between two looks, above 0; checked when the DAG is defined.
    :param timeout: seconds (or a timedelta) to wait, above 0; each look's stats request is capped by the time
        left, so a cluster that does not answer fails the wait at ``timeout`` (plus at most one short last
        look), with a message that says so.
    """

    template_fields: Sequence[str] = ("deployment_id", "min_allocations", "elasticsearch_conn_id")
    timeout_error = AirflowSensorTimeout
    ui_color = "#d6f0fa"

    def __init__(
        self,
        *,
        deployment_id: str,
        min_allocations: int | str | None = None,
        elasticsearch_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = DEFAULT_POLL_INTERVAL,
        max_pending_per_allocation: float | str | None = None,
        **kwargs: Any,
    ) -> None:
        poke_interval = seconds("poke_interval", poke_interval)
        if kwargs.get("timeout") is not None:
            kwargs["timeout"] = seconds("timeout", kwargs["timeout"])
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.max_pending_per_allocation = max_pending_per_allocation
        self.deployment_id = deployment_id
        self.min_allocations = min_allocations
        self.elasticsearch_conn_id = elasticsearch_conn_id
        self.deferrable = deferrable
        self._window: WaitWindow | None = None
        self._progress: ProgressLog | None = None

    @property
    def wait_interval(self) -> float:
        """Seconds between two looks at the deployment: ``poke_interval``."""
        return float(self.poke_interval)

    @property
    def _needed(self) -> int | None:
        return optional_positive_int("min_allocations", self.min_allocations)

    def execute(self, context: Context) -> Any:
        from airflow_esml.core.readiness import WaitWindow

        check_id("deployment_id", self.deployment_id)  # validate after templating, before the first request
        self._needed  # noqa: B018
        self._max_pending  # noqa: B018
        if not self.deferrable:
            if not self.reschedule:  # the wait starts now (a rescheduled one at its first try: see _start_window)
                self._window = WaitWindow.starting_now(self.timeout)
            return super().execute(context)
        return self._look_then_defer(context)

    def _look_then_defer(self, context: Context) -> Any:
        """Deferrable mode: look once, and defer to the trigger unless that look ends the wait."""
        from airflow_esml.core.readiness import WaitWindow

        self._window = WaitWindow.starting_now(self.timeout)
        first = self._first_poke(context)
        if first.is_done:
            return first.xcom_value
        self.defer_wait(
            self._needed,
            self._window,
            method_name="execute_complete",
            kwargs={"window": [self._window.started_at, self._window.end_time]},
        )

    def _first_poke(self, context: Context) -> PokeReturnValue:
        """One poke that fails, or skips under ``soft_fail``, as the base class does in poke mode."""
        try:
            return self.poke(context)
        except (DeploymentFailedError, AirflowSensorTimeout) as exc:
            if self.soft_fail:
                raise AirflowSkipException(f"Skipping due to soft_fail: {exc}") from exc
            raise

    @property
    def _max_pending(self) -> float | None:
        return parse_bound("max_pending_per_allocation", self.max_pending_per_allocation)

    def poke(self, context: Context) -> PokeReturnValue:
        """One look, bounded by the wait's end; past the end, a look that is not done raises the timeout with
        what it saw (for example that the cluster did not answer)."""
        from airflow_esml.core.metrics import judge_performance

        window = self._window or self._start_window(context)
        verdict = judge_performance(check_now(self.hook, self.deployment_id, self._needed, window), self._max_pending)
        if self._progress is None:
            self._progress = ProgressLog(self.log)
        self._progress(verdict)  # a line per change, not per poke
        if verdict.outcome == "failed":
            raise DeploymentFailedError(verdict.message)
        done = verdict.outcome == "success"
        if done:
            mark_ready(context)
        if not done and window.expired():
            raise AirflowSensorTimeout(window.timed_out(verdict).message)
        return PokeReturnValue(done, verdict.status.to_dict() if done and verdict.status else None)

    def _start_window(self, context: Context) -> WaitWindow:
        from airflow_esml.core.readiness import WaitWindow

        start = time.time()
        if self.reschedule:  # the wait began at the first reschedule, in an earlier process
            first = context["ti"].get_first_reschedule_date(context)
            start = first.timestamp() if first else start
        self._window = WaitWindow(start, start + self.timeout)
        return self._window

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, window: list[float] | None = None
    ) -> dict[str, Any] | None:
        """Resume after the trigger's event (soft_fail is applied by the base class)."""
        value = self.resumed_status(event)
        mark_ready(context)
        if self._max_pending is None:
            return value
        return self.resume_performance(context, window=window)

    def resume_performance(
        self, context: Context, event: Any = None, window: list[float] | None = None
    ) -> dict[str, Any] | None:
        """Deferrable wait for ``max_pending_per_allocation``: look once, else sleep ``poke_interval`` in the
        triggerer (a timer) and look again, until the sensor's deadline."""
        from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger  # loads airflow.triggers.base

        from airflow_esml.core.readiness import WaitWindow

        self._window = WaitWindow(*window) if window else WaitWindow.starting_now(self.timeout)
        result = self.poke(context)
        if result.is_done:
            return result.xcom_value
        self.defer(
            trigger=TimeDeltaTrigger(timedelta(seconds=min(self.poke_interval, self._window.remaining()))),
            method_name="resume_performance",
            kwargs={"window": [self._window.started_at, self._window.end_time]},
            timeout=timedelta(seconds=self._window.remaining() + 60),
        )


def mark_ready(context: Context) -> None:
    """Record (XCom ``allocations_started_at``) when the allocations were seen started: the end of a capacity
    window's loading time (docs/accounting.md)."""
    ti = context.get("ti")
    if ti is not None:
        ti.xcom_push(key=READY_AT_KEY, value=time.time())
