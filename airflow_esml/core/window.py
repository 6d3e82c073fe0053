"""Daily time windows in a timezone ("08:00 to 18:00 in Europe/Amsterdam, Monday to Friday"), as real instants.

A :class:`WindowSpec` says when a window opens and closes in local wall-clock time, on which weekdays, and how
long ahead of its opening a reservation is taken (the *lead*). :meth:`WindowSpec.window_on` turns one local
date into a :class:`Window` of aware datetimes; :meth:`WindowSpec.current` and :meth:`WindowSpec.last_ended`
say which window a run at a given instant is about; :meth:`WindowSpec.crons` gives the two cron expressions
whose runs fall exactly on the windows' times.

Daylight-saving changes. A wall-clock time is resolved the way Airflow's cron timetables resolve it (and kept
in UTC), so the runs of the schedule fall exactly on the times computed here:

- a time that does not exist that day (02:30 when clocks spring forward from 02:00 to 03:00) moves forward
  by the gap (to 03:30);
- a time that exists twice (02:30 when clocks fall back from 03:00 to 02:00) is its later occurrence.

A window is one hour shorter in real time on the day clocks spring forward, and one hour longer on the day
they fall back, when the change falls inside it: 00:00 to 06:00 in Europe/Amsterdam is 5 or 7 real hours
then. (08:00 to 18:00 there stays 10 hours: the change happens at night.) The lead is wall-clock time too: the
reservation is taken at the local time ``start - lead``, which is where its cron run falls.

Pure Python (``zoneinfo`` from the standard library): no Airflow, no Elasticsearch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

#: every ISO weekday, Monday (1) to Sunday (7)
ALL_WEEKDAYS: frozenset[int] = frozenset(range(1, 8))
#: how far back :meth:`WindowSpec.last_ended` looks for a window (a week, so any weekday set finds one)
_LOOK_BACK_DAYS = 8


def resolve(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """The instant at which the wall clock of ``zone`` shows ``clock`` on ``day``, as Airflow's cron resolves it.

    A time that does not exist that day moves forward by the gap; a time that exists twice is its later
    occurrence. The result is in UTC: aware datetimes of one zone at a repeated wall time do not compare
    equal to the same instant in another zone (PEP 495), so instants are kept in UTC.
    """
    naive = datetime.combine(day, clock)
    early, late = naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1)
    if early.utcoffset() == late.utcoffset():
        return early.astimezone(timezone.utc)
    if early.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None) != naive:
        return early.astimezone(timezone.utc)  # in the gap: fold=0 used the offset before the change
    return late.astimezone(timezone.utc)  # exists twice: the later occurrence


@dataclass(frozen=True)
class Window:
    """One window: from ``start`` (inclusive) to ``end`` (exclusive); its reservation is taken at ``reserve_at``.

    The instants are in UTC.

    :param day: the local date on which the window opens.
    :param timezone: the zone of the window's wall clock, for display.
    """

    day: date
    start: datetime
    end: datetime
    reserve_at: datetime
    timezone: str = "UTC"

    @property
    def length(self) -> timedelta:
        """Its real length: an hour less or more than on the wall clock when a daylight-saving change falls inside."""
        return self.end.astimezone(timezone.utc) - self.start.astimezone(timezone.utc)

    @property
    def start_utc(self) -> str:
        """The opening in UTC, ``2026-03-02T07:00:00Z``: the part of a reservation's id that names the window."""
        return self.start.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

    def holds_at(self, at: datetime) -> bool:
        """True from the reservation's time to the window's end: a run at ``at`` should hold this window."""
        return self.reserve_at <= at < self.end

    def local(self, at: datetime) -> str:
        """``at`` on the window's wall clock, e.g. ``2026-03-02T08:00:00+01:00``."""
        return at.astimezone(ZoneInfo(self.timezone)).isoformat()

    def describe(self) -> str:
        return f"{self.local(self.start)} to {self.local(self.end)}"

    def to_dict(self) -> dict[str, str]:
        """JSON-safe, for XCom: the times on the window's wall clock."""
        return {
            "day": self.day.isoformat(),
            "start": self.local(self.start),
            "end": self.local(self.end),
            "reserve_at": self.local(self.reserve_at),
            "timezone": self.timezone,
        }


@dataclass(frozen=True)
class WindowSpec:
    """A daily window in local wall-clock time. Build it with :func:`airflow_esml.core.params.parse_window_spec`.

    :param start: local opening time.
    :param end: local closing time; earlier than ``start`` means the window closes the next day (overnight).
    :param timezone: an IANA timezone name, e.g. ``Europe/Amsterdam``.
    :param lead: how long before ``start`` (wall clock) the reservation is taken; less than a day.
    :param weekdays: the ISO weekdays (1 = Monday) on which a window opens.
    """

    start: time
    end: time
    timezone: str
    lead: timedelta = timedelta(0)
    weekdays: frozenset[int] = ALL_WEEKDAYS

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def overnight(self) -> bool:
        return self.end <= self.start

    def window_on(self, day: date) -> Window:
        """The window that opens on local date ``day`` (whether or not ``day`` is one of the weekdays)."""
        zone = self.zone
        end_day = day + timedelta(days=1) if self.overnight else day
        reserve = datetime.combine(day, self.start) - self.lead
        return Window(
            day=day,
            start=resolve(day, self.start, zone),
            end=resolve(end_day, self.end, zone),
            reserve_at=resolve(reserve.date(), reserve.time(), zone),
            timezone=self.timezone,
        )

    def windows_around(self, at: datetime, *, back: int = 1, ahead: int = 2) -> Iterator[Window]:
        """The windows opening on the weekdays from ``back`` days before ``at``'s local date to ``ahead`` after."""
        today = at.astimezone(self.zone).date()
        for offset in range(-back, ahead + 1):
            day = today + timedelta(days=offset)
            if day.isoweekday() in self.weekdays:
                yield self.window_on(day)

    def current(self, at: datetime) -> Window | None:
        """The window a run at ``at`` should hold: taken (``reserve_at <= at``) and not ended (``at < end``).

        None off hours. A run at a window's end is already off hours, so the release run never holds it.
        """
        _aware(at)
        return next((w for w in self.windows_around(at) if w.holds_at(at)), None)

    def next_window(self, at: datetime) -> Window:
        """The first window whose reservation is taken after ``at``."""
        _aware(at)
        return next(w for w in self.windows_around(at, back=1, ahead=_LOOK_BACK_DAYS) if w.reserve_at > at)

    def last_ended(self, at: datetime) -> Window | None:
        """The latest window that ended at or before ``at`` (within a week): the one a release run at ``at`` ends."""
        _aware(at)
        ended = [w for w in self.windows_around(at, back=_LOOK_BACK_DAYS, ahead=0) if w.end <= at]
        return max(ended, key=lambda w: w.end, default=None)

    def crons(self) -> tuple[str, str]:
        """Two cron expressions (in ``timezone``): one at ``start - lead``, when the reservation is taken, and
        one at ``end``, when it is released. Their weekdays move with the times when those fall on another day
        than the opening (a lead across midnight, an overnight window)."""
        reserve = datetime.combine(date(2000, 1, 3), self.start) - self.lead  # a Monday: any day would do
        reserve_shift = (reserve.date() - date(2000, 1, 3)).days
        return (
            _cron(reserve.time(), self.weekdays, reserve_shift),
            _cron(self.end, self.weekdays, 1 if self.overnight else 0),
        )


def _cron(clock: time, weekdays: frozenset[int], shift: int) -> str:
    days = sorted({(day + shift) % 7 for day in weekdays})  # ISO 1-7 to cron 0-6 (Sunday is 0)
    field = "*" if len(days) == 7 else ",".join(str(day) for day in days)
    return f"{clock.minute} {clock.hour} * * {field}"


def _aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"a window needs an aware datetime, got the naive {at.isoformat()}")
