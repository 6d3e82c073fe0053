"""The lease ids of reservations: the same for the run that takes one and the run that ends it."""

from __future__ import annotations

from datetime import date

from airflow_esml.core.params import parse_window_spec
from airflow_esml.leases.reservation import off_hours_id, reservation_id


def test_reservation_ids_name_the_dag_the_window_and_the_installation():
    spec = parse_window_spec(8, 18, "Europe/Amsterdam", 30, "1-5")
    window = spec.window_on(date(2026, 3, 2))
    assert reservation_id("hours", "day", window) == "reservation/hours/day/2026-03-02T07:00:00Z"
    assert reservation_id("hours", "day", window, "team-a") == "team-a:" + reservation_id("hours", "day", window)
    assert off_hours_id("hours", "day", window, "team-a") == (
        "team-a:reservation/hours/day/off-hours-before/2026-03-02T07:00:00Z"
    )
