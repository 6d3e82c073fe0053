"""The reservation operators against the simulator: taken before the window, composed with a batch lease,
ended after it, expired when the end never ran, and the off-hours floor."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from airflow.providers.common.compat.sdk import AirflowSkipException

from airflow_esml.exceptions import InvalidParameterError
from airflow_esml.operators import reservation as module
from airflow_esml.operators.lease import (
    AcquireDeploymentLeaseOperator,
    ReapDeploymentLeasesOperator,
    ReleaseDeploymentLeaseOperator,
)
from airflow_esml.operators.reservation import EndReservationOperator, ReserveDeploymentOperator
from tests.lease_helpers import make_store

MONDAY_RESERVE = datetime(2026, 3, 2, 6, 30, tzinfo=timezone.utc)  # 07:30 in Amsterdam (UTC+1)
MONDAY_OPEN = datetime(2026, 3, 2, 7, tzinfo=timezone.utc)
MONDAY_END = datetime(2026, 3, 2, 17, tzinfo=timezone.utc)  # 18:00 in Amsterdam
WINDOW = {"start": 8, "end": "18:00", "timezone": "Europe/Amsterdam", "lead_minutes": 30, "weekdays": "1-5"}
MONDAY_ID = "reservation/{dag}/my-e5/2026-03-02T07:00:00Z"


def context(logical_date: datetime, run_id: str = "scheduled__1") -> dict:
    return {"run_id": run_id, "logical_date": logical_date, "ti": SimpleNamespace(try_number=1)}


def reserve(**kwargs) -> ReserveDeploymentOperator:
    kwargs.setdefault("number_of_allocations", 3)
    return ReserveDeploymentOperator(task_id="reserve", deployment_id="my-e5", **{**WINDOW, **kwargs})


def end(**kwargs) -> EndReservationOperator:
    return EndReservationOperator(task_id="end_reservation", deployment_id="my-e5", **{**WINDOW, **kwargs})


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch):
    """Sets the operators' wall clock: ``clock(at)``."""

    def set_to(at: datetime) -> None:
        monkeypatch.setattr(module, "utc_now", lambda: at)

    return set_to


def targets(sim) -> list[int]:
    return [value for _, value in sim.audit.target_history("my-e5")]


def lease_ids(deployment_id: str = "my-e5") -> list[str]:
    doc = make_store().read(deployment_id)
    return [] if doc is None else [lease.lease_id for lease in doc.leases]


def test_taken_before_the_window_shared_with_a_batch_and_ended_after_it(sim, clock):
    clock(MONDAY_RESERVE)
    operator = reserve(wait_for_completion=True, poll_interval=0.05, timeout=30)
    taken = operator.execute(context(MONDAY_RESERVE, "scheduled__0730"))
    reservation = MONDAY_ID.format(dag=operator.dag_id)
    assert taken["lease_id"] == reservation
    assert taken["window"]["start"] == "2026-03-02T08:00:00+01:00"
    assert taken["deployment"]["started_allocations"] >= 3  # started by the time the window opens
    (lease,) = make_store().read("my-e5").leases
    lifetime = (MONDAY_END + timedelta(minutes=15) - MONDAY_RESERVE).total_seconds()  # to the end, plus the grace
    assert lease.expires_at - lease.acquired_at == pytest.approx(lifetime, abs=5)

    batch = {"task_id": "batch", "deployment_id": "my-e5"}
    AcquireDeploymentLeaseOperator(number_of_allocations=5, **batch).execute(context(MONDAY_OPEN, "batch_run"))
    assert sim.cluster.target("my-e5") == 5
    ReleaseDeploymentLeaseOperator(**batch).execute(context(MONDAY_OPEN, "batch_run"))
    assert sim.cluster.target("my-e5") == 3  # the batch is gone, the reservation stays
    assert lease_ids() == [reservation]

    clock(MONDAY_END)
    ended = end().execute(context(MONDAY_END, "scheduled__1800"))  # another run of the DAG
    assert ended["lease_id"] == reservation and ended["restored"] is True
    assert make_store().read("my-e5") is None
    assert targets(sim)[-4:] == [3, 5, 3, 1]


def test_a_reservation_whose_end_never_ran_expires_by_itself(sim, clock):
    clock(MONDAY_END - timedelta(seconds=1))  # taken a second before the window ends, with half a second of grace
    reserve(grace=0.5).execute(context(MONDAY_RESERVE))
    assert sim.cluster.target("my-e5") == 3
    (lease,) = make_store().read("my-e5").leases
    assert lease.expires_at - lease.acquired_at == pytest.approx(1.5, abs=0.2)
    time.sleep(1.7)
    reaped = ReapDeploymentLeasesOperator(task_id="reap").execute(context(MONDAY_END))
    assert [x["lease_id"] for x in reaped["my-e5"]["reaped"]] == [MONDAY_ID.format(dag=reserve().dag_id)]
    assert sim.cluster.target("my-e5") == 1
    assert make_store().read("my-e5") is None


def test_an_off_hours_floor_lasts_until_the_next_windows_reservation(sim, clock):
    clock(MONDAY_RESERVE)
    reserve().execute(context(MONDAY_RESERVE))
    clock(MONDAY_END)
    ended = end(off_hours_allocations=2).execute(context(MONDAY_END))
    assert ended["restored"] is False and sim.cluster.target("my-e5") == 2
    (floor,) = lease_ids()
    assert floor.endswith("/my-e5/off-hours-before/2026-03-03T07:00:00Z")
    tuesday = MONDAY_RESERVE + timedelta(days=1)
    clock(tuesday)
    reserve().execute(context(tuesday))
    assert lease_ids() == [MONDAY_ID.format(dag=reserve().dag_id).replace("03-02", "03-03")]
    assert targets(sim)[-3:] == [3, 2, 3]  # never down to the baseline in between


def test_runs_outside_the_windows_are_skipped(sim, clock):
    saturday = datetime(2026, 3, 7, 11, tzinfo=timezone.utc)
    clock(saturday)
    with pytest.raises(AirflowSkipException, match="outside the windows: the next reservation is taken at 2026-03-09"):
        reserve().execute(context(saturday))
    clock(MONDAY_END)  # a retry of Monday's reserve run after the window ended
    with pytest.raises(AirflowSkipException, match="is over"):
        reserve().execute(context(MONDAY_RESERVE))
    assert make_store().read("my-e5") is None and targets(sim) == [1]


def test_ending_a_reservation_that_is_gone_is_not_an_error(sim, clock):
    clock(MONDAY_END)
    result = end().execute(context(MONDAY_END))
    assert result["target"] is None and result["window"]["end"] == "2026-03-02T18:00:00+01:00"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"start": 25}, "start must be an hour"),
        ({"timezone": "Amsterdam"}, "timezone must be an IANA timezone"),
        ({"lead_minutes": 1440}, "less than a day"),
        ({"grace": 0}, "grace must be a positive number"),
    ],
)
def test_a_bad_window_fails_when_the_dag_is_parsed(kwargs, fragment):
    with pytest.raises(InvalidParameterError, match=fragment):
        reserve(**kwargs)


def test_a_templated_window_is_checked_when_the_task_runs(sim, clock):
    operator = end(start="{{ params.start_hour }}", off_hours_allocations=0)
    operator.start = "25"  # what the template rendered
    with pytest.raises(InvalidParameterError, match="start must be an hour"):
        operator.execute(context(MONDAY_END))


def test_template_fields():
    window = {"deployment_id", "start", "end", "timezone", "lead_minutes", "weekdays", "reservation_name"}
    assert window | {"number_of_allocations"} <= set(ReserveDeploymentOperator.template_fields)
    assert window | {"off_hours_allocations"} <= set(EndReservationOperator.template_fields)


def test_off_hours_at_zero_through_an_adaptive_baseline(sim, clock):
    night = {"enabled": True, "min_number_of_allocations": 0, "max_number_of_allocations": 1}
    sim.cluster.update_deployment("my-e5", adaptive_allocations=night)  # once, as docs/reservations.md says
    clock(MONDAY_RESERVE)
    taken = reserve().execute(context(MONDAY_RESERVE))
    assert taken["original_baseline"]["adaptive_allocations"] == night
    # by day adaptive allocations stay on with their minimum raised to 3 (adaptive_policy="raise_min")
    by_day = {**night, "min_number_of_allocations": 3, "max_number_of_allocations": 3}
    assert sim.cluster.deployment_stats("my-e5")["adaptive_allocations"] == by_day
    assert sim.cluster.target("my-e5") == 3
    clock(MONDAY_END)
    end().execute(context(MONDAY_END))
    assert sim.cluster.deployment_stats("my-e5")["adaptive_allocations"] == night  # may scale to 0 at night
