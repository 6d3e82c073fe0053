"""Reservations: leases for a time window instead of a DAG run. Pure decisions; the I/O is ``LeaseStore``'s.

A reservation is taken by one run (at the window's start minus the lead) and released by another (at its
end), so its lease id comes from the window, not from a run: ``reservation/<dag_id>/<name>/<start in UTC>``.
Its time to live runs to the window's end plus a grace, so it expires by itself when the releasing run never
comes. Outside the windows an optional *off-hours* reservation can keep a smaller floor until the next
window's reservation is taken. See ``docs/reservations.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from airflow_esml.core.window import Window, WindowSpec
from airflow_esml.leases.lease import with_installation


def reservation_id(dag_id: str, name: str, window: Window, installation: str = "") -> str:
    """The lease id of the reservation of ``window``: the same for the run that takes it and the one that ends it
    (prefixed with ``installation``, as :func:`~airflow_esml.leases.lease.lease_id_for` does)."""
    return with_installation(f"reservation/{dag_id}/{name}/{window.start_utc}", installation)


def off_hours_id(dag_id: str, name: str, before: Window, installation: str = "") -> str:
    """The lease id of the off-hours reservation that lasts until ``before``'s reservation is taken."""
    return with_installation(f"reservation/{dag_id}/{name}/off-hours-before/{before.start_utc}", installation)


@dataclass(frozen=True)
class Hold:
    """A reservation to take now: which window, and for how many seconds (until its end plus the grace).

    :param until: when it ends (the window's end, or for an off-hours reservation the next reservation time).
    """

    window: Window
    until: datetime
    ttl: float


def plan_reserve(spec: WindowSpec, at: datetime, now: datetime, grace: timedelta) -> Hold | str:
    """The window a run at ``at`` (its logical date) reserves, or why it reserves none.

    ``now`` is the wall clock: a retry that runs after the window's end reserves nothing.
    """
    window = spec.current(at)
    if window is None:
        upcoming = spec.next_window(at)
        return (
            f"{upcoming.local(at)} is outside the windows: the next reservation is taken at "
            f"{upcoming.local(upcoming.reserve_at)} for {upcoming.describe()}"
        )
    if now >= window.end:
        return f"the window {window.describe()} is over (now {window.local(now)})"
    return Hold(window, window.end, (window.end - now + grace).total_seconds())


def plan_off_hours(spec: WindowSpec, at: datetime, now: datetime, grace: timedelta) -> Hold:
    """The off-hours reservation a run at ``at`` takes: until the next window's reservation time, plus the grace.

    Its ``window`` is the window it leads to (which names it, see :func:`off_hours_id`).
    """
    upcoming = spec.next_window(at)
    return Hold(upcoming, upcoming.reserve_at, max((upcoming.reserve_at - now + grace).total_seconds(), 1.0))
