"""Daily windows: their instants on ordinary days and on both daylight-saving changes; which window a run is about."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import pendulum
import pytest

from airflow_esml.core.params import parse_window_spec
from airflow_esml.core.window import WindowSpec, resolve
from airflow_esml.exceptions import InvalidParameterError

AMS = "Europe/Amsterdam"
SPRING = date(2026, 3, 29)  # clocks go from 02:00 to 03:00
AUTUMN = date(2026, 10, 25)  # clocks go from 03:00 back to 02:00


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def business(lead: int = 30, weekdays: str = "1-5") -> WindowSpec:
    return parse_window_spec(8, 18, AMS, lead, weekdays)


def test_an_ordinary_day():
    window = business().window_on(date(2026, 3, 2))  # a Monday, UTC+1
    assert window.start == utc(2026, 3, 2, 7) and window.end == utc(2026, 3, 2, 17)
    assert window.reserve_at == utc(2026, 3, 2, 6, 30)
    assert window.length == timedelta(hours=10)
    assert window.start_utc == "2026-03-02T07:00:00Z"
    assert window.to_dict()["start"] == "2026-03-02T08:00:00+01:00"


@pytest.mark.parametrize(("day", "hours", "offset"), [(SPRING, 5, "+02:00"), (AUTUMN, 7, "+01:00")])
def test_a_window_across_the_change_is_an_hour_shorter_or_longer(day, hours, offset):
    window = parse_window_spec(0, 6, AMS).window_on(day)
    assert window.length == timedelta(hours=hours)
    assert window.to_dict()["end"].endswith(offset)


@pytest.mark.parametrize(("day", "start", "end"), [(SPRING, 6, 16), (AUTUMN, 7, 17)])
def test_business_hours_on_the_change_days_are_ten_hours_at_the_new_offset(day, start, end):
    window = business().window_on(day)
    assert (window.start, window.end) == (utc(2026, day.month, day.day, start), utc(2026, day.month, day.day, end))
    assert window.length == timedelta(hours=10)


def test_a_time_that_does_not_exist_moves_forward_by_the_gap():
    at = resolve(SPRING, time(2, 30), pendulum.timezone(AMS))
    assert at.astimezone(pendulum.timezone(AMS)).isoformat() == "2026-03-29T03:30:00+02:00"
    window = parse_window_spec("02:30", 6, AMS).window_on(SPRING)
    assert window.start == utc(2026, 3, 29, 1, 30) and window.length == timedelta(hours=2, minutes=30)


def test_a_time_that_exists_twice_is_its_later_occurrence():
    at = resolve(AUTUMN, time(2, 30), pendulum.timezone(AMS))
    assert at.astimezone(pendulum.timezone(AMS)).isoformat() == "2026-10-25T02:30:00+01:00"
    assert at == utc(2026, 10, 25, 1, 30)


@pytest.mark.parametrize("day", [SPRING, AUTUMN, date(2026, 3, 28), date(2026, 10, 24)])
@pytest.mark.parametrize(("start", "end", "lead"), [(8, 18, 30), ("02:30", 6, 0), ("03:00", "02:30", 45), (0, 6, 90)])
def test_airflows_cron_runs_fall_exactly_on_the_computed_times(day, start, end, lead):
    from airflow.timetables.base import TimeRestriction
    from airflow.timetables.trigger import CronTriggerTimetable

    spec = parse_window_spec(start, end, AMS, lead)
    window = spec.window_on(day)

    def runs(cron: str) -> list[datetime]:
        """Airflow's runs from two days before to two days after, each after the one before (as scheduled)."""
        timetable, last, found = CronTriggerTimetable(cron, timezone=AMS), None, []
        earliest = pendulum.datetime(day.year, day.month, day.day, tz=AMS).subtract(days=2)
        restriction = TimeRestriction(earliest=earliest, latest=earliest.add(days=4), catchup=True)
        while info := timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction):
            found.append(info.logical_date)
            last = info.data_interval
        return found

    reserve_cron, end_cron = spec.crons()
    assert window.reserve_at in runs(reserve_cron)
    assert window.end in runs(end_cron)


def test_a_lead_across_midnight_reserves_the_evening_before():
    spec = parse_window_spec("00:30", 6, AMS, 60, "1-5")
    monday = spec.window_on(date(2026, 3, 2))
    assert monday.to_dict()["reserve_at"] == "2026-03-01T23:30:00+01:00"  # Sunday evening
    assert spec.current(utc(2026, 3, 1, 22, 30)) == monday  # the Sunday-evening run holds Monday's window
    assert spec.current(utc(2026, 3, 1, 22, 29)) is None
    assert spec.crons() == ("30 23 * * 0,1,2,3,4", "0 6 * * 1,2,3,4,5")


def test_an_overnight_window_ends_the_next_day():
    spec = parse_window_spec(22, 6, "UTC", 0, "mon-fri")
    friday = spec.window_on(date(2026, 3, 6))
    assert friday.end == utc(2026, 3, 7, 6)
    assert spec.crons() == ("0 22 * * 1,2,3,4,5", "0 6 * * 2,3,4,5,6")
    assert spec.last_ended(utc(2026, 3, 7, 6)) == friday


def test_which_window_a_run_is_about():
    spec = business()
    monday = spec.window_on(date(2026, 3, 2))
    assert spec.current(utc(2026, 3, 2, 6, 30)) == monday  # the reserve run, at 07:30 local
    assert spec.current(utc(2026, 3, 2, 10)) == monday  # a manual run during the window
    assert spec.current(utc(2026, 3, 2, 17)) is None  # the release run, at 18:00: off hours
    assert spec.current(utc(2026, 3, 2, 6, 29)) is None
    assert spec.last_ended(utc(2026, 3, 2, 17)) == monday
    assert spec.last_ended(utc(2026, 3, 2, 16, 59)) == spec.window_on(date(2026, 2, 27))  # the Friday before
    assert spec.current(utc(2026, 3, 7, 10)) is None  # a Saturday
    assert spec.next_window(utc(2026, 3, 6, 17)) == spec.window_on(date(2026, 3, 9))  # Friday 18:00 -> Monday
    assert spec.crons() == ("30 7 * * 1,2,3,4,5", "0 18 * * 1,2,3,4,5")


def test_a_naive_time_is_refused():
    with pytest.raises(ValueError, match="aware"):
        business().current(datetime(2026, 3, 2, 8))


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ((24, 18, AMS), "start must be an hour from 0 to 23"),
        (("8:5", 18, AMS), "start must be"),
        ((8, "18:60", AMS), "end must be"),
        ((8, 8, AMS), "start and end must differ"),
        ((8, 18, "Mars/Olympus"), "timezone must be an IANA timezone"),
        ((8, 18, AMS, -5), "lead_minutes must be an integer of at least 0"),
        ((8, 18, AMS, 24 * 60), "less than a day"),
        ((8, 18, AMS, 0, "5-1"), "runs backwards"),
        ((8, 18, AMS, 0, "funday"), "is not a weekday"),
    ],
)
def test_bad_windows_are_refused(args, fragment):
    with pytest.raises(InvalidParameterError, match=fragment):
        parse_window_spec(*args)


def test_weekdays_forms():
    assert parse_window_spec(8, 18, AMS, 0, "mon-fri").weekdays == frozenset({1, 2, 3, 4, 5})
    assert parse_window_spec(8, 18, AMS, 0, "0,6").weekdays == frozenset({6, 7})
    assert parse_window_spec(8, 18, AMS, 0, [1, 3]).weekdays == frozenset({1, 3})
    assert parse_window_spec("08:15", "17:45", AMS, "20").start == time(8, 15)
