"""Operators for reservations: a deployment's allocations for a daily time window ("8 from 08:00 to 18:00").

A reservation is a lease (see ``docs/leases.md``) whose id comes from the window, so the run that takes it
(at the window's start minus the lead) and the run that ends it (at the window's end) are different DAG runs
of one DAG. Each run decides from its logical date which window it is about (:mod:`airflow_esml.core.window`,
:mod:`airflow_esml.leases.reservation`). See ``docs/reservations.md``. The lease store loads the
``elasticsearch`` client, so it is imported when a task runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowSkipException, conf

from airflow_esml.core.params import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_RESERVATION_GRACE,
    DEFAULT_TIMEOUT,
    check_id,
    positive_int,
    seconds,
)
from airflow_esml.core.params import parse_window_spec as _parse_window_spec
from airflow_esml.operators.lease import _LeaseOperator
from airflow_esml.operators.waiting import AllocationsWaitMixin

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_esml.core.window import Window, WindowSpec
    from airflow_esml.leases.reservation import Hold

_WINDOW_FIELDS = ("start", "end", "timezone", "lead_minutes", "weekdays")


def utc_now() -> datetime:
    """The wall clock (a module function, so tests can move it)."""
    return datetime.now(timezone.utc)


def _templated(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


class _ReservationOperator(_LeaseOperator):
    """What the reservation operators share: the deployment, the window, the reservation's name and the grace."""

    template_fields: Sequence[str] = (
        "deployment_id",
        *_WINDOW_FIELDS,
        "reservation_name",
        "leases_index",
        "elasticsearch_conn_id",
    )

    def __init__(
        self,
        *,
        deployment_id: str,
        start: int | str,
        end: int | str,
        timezone: str,
        lead_minutes: int | str = 0,
        weekdays: str | Sequence[int] = "*",
        reservation_name: str | None = None,
        grace: float | timedelta = DEFAULT_RESERVATION_GRACE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deployment_id = deployment_id
        self.start = start
        self.end = end
        self.timezone = timezone
        self.lead_minutes = lead_minutes
        self.weekdays = weekdays
        self.reservation_name = reservation_name
        self.grace = seconds("grace", grace)
        if not any(_templated(getattr(self, name)) for name in _WINDOW_FIELDS):
            self.window_spec()  # a bad window fails when the DAG is parsed

    @property
    def grace_delta(self) -> timedelta:
        return timedelta(seconds=self.grace)

    def window_spec(self) -> WindowSpec:
        return _parse_window_spec(self.start, self.end, self.timezone, self.lead_minutes, self.weekdays)

    @property
    def name(self) -> str:
        """The reservation's name (default the deployment id); asked for before any request, so an empty
        ``deployment_id`` is refused here."""
        check_id("deployment_id", self.deployment_id)
        return self.reservation_name or self.deployment_id

    def reservation_lease(self, window: Window) -> str:
        """The lease id of ``window``'s reservation."""
        from airflow_esml.leases.reservation import reservation_id

        return reservation_id(self.dag_id, self.name, window, self.installation_id)

    def off_hours_lease(self, before: Window) -> str:
        """The lease id of the off-hours reservation that leads up to the window ``before``."""
        from airflow_esml.leases.reservation import off_hours_id

        return off_hours_id(self.dag_id, self.name, before, self.installation_id)

    def run_time(self, context: Context) -> datetime:
        """The instant the run is about: its logical date, else (a manual run without one) when it was due."""
        when = context.get("logical_date") or getattr(context.get("dag_run"), "run_after", None)
        return when or utc_now()

    def take(self, lease_id: str, allocations: int, hold: Hold, context: Context) -> dict[str, Any]:
        """Acquire (or renew) ``lease_id`` until ``hold.until`` plus the grace (a default inference endpoint with no
        deployment yet is deployed first)."""
        deploy_within = getattr(self, "timeout", DEFAULT_TIMEOUT)
        _, result = self.take_lease(lease_id, allocations, context, ttl=hold.ttl, deploy_within=deploy_within)
        self.log.info(
            "%s: reservation %s holds %d allocations until %s (expires %.0fs from now); target %s",
            self.deployment_id,
            lease_id,
            allocations,
            hold.window.local(hold.until),
            hold.ttl,
            result["number_of_allocations"],
        )
        return result

    def drop(self, lease_id: str) -> dict[str, Any]:
        """Release ``lease_id`` if it is held (a reservation already gone is not an error)."""
        result = self.release_lease(lease_id)
        if result["target"] is None:
            self.log.info("%s: no lease document; reservation %s is not held", self.deployment_id, lease_id)
        else:
            self.log.info(
                "%s: reservation %s is not held any more; %d lease(s) left, %s allocations",
                self.deployment_id,
                lease_id,
                len(result["leases"]),
                result["number_of_allocations"],
            )
        return result


class ReserveDeploymentOperator(AllocationsWaitMixin, _ReservationOperator):
    """Reserve allocations for the window the run's logical date points at, ahead of its opening.

    A run between a window's reservation time (``start - lead_minutes``, local wall clock) and its end takes
    (or renews) the window's reservation, a lease that expires at the window's end plus ``grace`` if the run
    that ends it never comes. The deployment gets ``max(baseline, every live lease)``, so it composes with
    batch leases. A run outside the windows is skipped. It also releases the off-hours reservation that led up
    to this window (see :class:`EndReservationOperator`), after taking its own. A failed wait keeps the
    reservation (the allocations may still come; it ends with the window). The XCom result has the lease id,
    the window and the target.

    :param deployment_id: the deployment, or an inference endpoint id. (templated)
    :param number_of_allocations: the allocations to hold during the window. (templated)
    :param start: the window's local opening, an hour (``8``) or ``"HH:MM"``. (templated)
    :param end: its local closing; earlier than ``start`` means the next day. (templated)
    :param timezone: the IANA timezone of ``start`` and ``end``, e.g. ``"Europe/Amsterdam"``. (templated)
    :param lead_minutes: how long before ``start`` the reservation is taken, so the allocations are started
        when the window opens. (templated)
    :param weekdays: the days a window opens, as a cron day-of-week field (``"1-5"``, ``"mon-fri"``); default
        every day. (templated)
    :param reservation_name: tells apart several reservations of one DAG on one deployment; default the
        deployment id. (templated)
    :param grace: how long the reservation outlives the window's end (seconds or timedelta).
    :param leases_index: the Elasticsearch index of the lease documents. (templated)
    :param on_drift: ``"respect"`` (default) or ``"restore"``; see ``docs/leases.md``.
    :param wait_for_completion: wait until ``number_of_allocations`` allocations are started.
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param poll_interval: seconds between two looks at the deployment while waiting.
    :param timeout: seconds to wait for the allocations.
    """

    template_fields: Sequence[str] = ("number_of_allocations", *_ReservationOperator.template_fields)
    ui_color = "#c8e6c9"

    def __init__(
        self,
        *,
        number_of_allocations: int | str,
        wait_for_completion: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.number_of_allocations = number_of_allocations
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = seconds("poll_interval", poll_interval)
        self.timeout = seconds("timeout", timeout)

    def execute(self, context: Context) -> dict[str, Any]:
        allocations = positive_int("number_of_allocations", self.number_of_allocations)
        hold = self._hold(context)
        result = self.take(self.reservation_lease(hold.window), allocations, hold, context)
        result["window"] = hold.window.to_dict()
        self.drop(self.off_hours_lease(hold.window))
        if self.wait_for_completion:
            result["deployment"] = self.wait_for_allocations(allocations, kwargs={"result": result})
        return result

    def _hold(self, context: Context) -> Hold:
        """The hold of the window the run is about; a run outside the windows is skipped."""
        from airflow_esml.leases.reservation import plan_reserve

        hold = plan_reserve(self.window_spec(), self.run_time(context), utc_now(), self.grace_delta)
        if isinstance(hold, str):
            raise AirflowSkipException(f"{self.deployment_id}: nothing to reserve: {hold}")
        return hold

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, result: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Resume after the trigger's event (a failed wait fails the task and keeps the reservation)."""
        return {**(result or {}), "deployment": self.resumed_status(event)}


class EndReservationOperator(_ReservationOperator):
    """End the reservation of the window that ended last at the run's logical date.

    The deployment gets ``max(baseline, the leases left)``, or its baseline back. Ending a reservation that is
    gone (already ended, expired and reaped, or never taken) is not an error. With ``off_hours_allocations``
    the run first takes an off-hours reservation of that many allocations until the next window's
    reservation time (plus ``grace``); the next :class:`ReserveDeploymentOperator` ends it. With 0 (the
    default) nothing is held off hours: the deployment's own baseline applies (see ``docs/reservations.md``
    for scaling to 0 through adaptive allocations). A run before any window ended is skipped.

    Takes the same window parameters as :class:`ReserveDeploymentOperator` (``start``, ``end``, ``timezone``,
    ``lead_minutes``, ``weekdays``, ``reservation_name``, ``grace``; all templated but ``grace``).

    :param deployment_id: the deployment, or an inference endpoint id. (templated)
    :param off_hours_allocations: allocations to hold until the next window's reservation; 0 holds none.
        (templated)
    :param leases_index: the Elasticsearch index of the lease documents. (templated)
    :param on_drift: ``"respect"`` (default) or ``"restore"``.
    """

    template_fields: Sequence[str] = ("off_hours_allocations", *_ReservationOperator.template_fields)
    ui_color = "#e0f2e1"

    def __init__(self, *, off_hours_allocations: int | str = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.off_hours_allocations = off_hours_allocations

    def execute(self, context: Context) -> dict[str, Any]:
        off_hours = positive_int("off_hours_allocations", self.off_hours_allocations, minimum=0)
        spec, at = self.window_spec(), self.run_time(context)
        window = spec.last_ended(at)
        if window is None:
            raise AirflowSkipException(f"{self.deployment_id}: no window ended in the week before {at.isoformat()}")
        # first, so that the target never dips below the off-hours floor
        taken = self._take_off_hours(spec, at, off_hours, context) if off_hours else None
        result = self.drop(self.reservation_lease(window))
        result["window"] = window.to_dict()
        result["off_hours"] = taken
        return result

    def _take_off_hours(self, spec: WindowSpec, at: datetime, allocations: int, context: Context) -> dict[str, Any]:
        """Take the off-hours reservation of ``allocations`` until the next window's reservation time."""
        from airflow_esml.leases.reservation import plan_off_hours

        hold = plan_off_hours(spec, at, utc_now(), self.grace_delta)
        return self.take(self.off_hours_lease(hold.window), allocations, hold, context)
