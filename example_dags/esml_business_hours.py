"""Business-hours capacity: a reservation of allocations for the working day, taken ahead of it.

The DAG runs twice a working day: at ``start_hour`` minus ``lead_minutes`` and at ``end_hour``, in
``timezone`` (one timetable with two crons, built from the params' defaults, so the schedule follows them).
Every run does the same two tasks and decides from its logical date what they mean:

- ``reserve`` takes the reservation of the window the run is in (the morning run: today's), so the
  allocations are started when the window opens; outside a window (the evening run) it is skipped;
- ``end_reservation`` ends the reservation of the window that ended last (the evening run: today's; the
  morning run: the previous working day's, if its evening run never came), optionally leaving an off-hours
  floor of ``off_hours_allocations`` until the next morning.

Reservations are leases (``docs/leases.md``): batch runs that lease the same deployment during the day get
``max(baseline, every live lease)``, and a reservation whose evening run never came expires by itself 15
minutes after its window. Off hours the deployment has its own baseline; for 0 allocations at night, give it
adaptive allocations with a minimum of 0 once (``docs/reservations.md``).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param

try:
    from airflow.sdk import MultipleCronTriggerTimetable
except ImportError:  # Airflow 3.1 has it only in core
    from airflow.timetables.trigger import MultipleCronTriggerTimetable  # type: ignore[no-redef]

from airflow_esml.core.params import parse_window_spec
from airflow_esml.operators.reservation import EndReservationOperator, ReserveDeploymentOperator

# [START howto_business_hours]
START_HOUR, END_HOUR, LEAD_MINUTES = 8, 18, 30
TIMEZONE, WEEKDAYS = "Europe/Amsterdam", "1-5"
# the schedule follows the params' defaults: a run at 07:30 and one at 18:00, Monday to Friday, local time
RESERVE_CRON, END_CRON = parse_window_spec(START_HOUR, END_HOUR, TIMEZONE, LEAD_MINUTES, WEEKDAYS).crons()

WINDOW = {
    "deployment_id": "{{ params.deployment_id }}",
    "start": "{{ params.start_hour }}",
    "end": "{{ params.end_hour }}",
    "timezone": "{{ params.timezone }}",
    "lead_minutes": "{{ params.lead_minutes }}",
    "weekdays": "{{ params.weekdays }}",
}

with DAG(
    dag_id="esml_business_hours",
    schedule=MultipleCronTriggerTimetable(RESERVE_CRON, END_CRON, timezone=TIMEZONE),
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,
    params={
        "deployment_id": Param("my-e5", type="string"),
        "business_allocations": Param(8, type="integer", minimum=1),
        "off_hours_allocations": Param(0, type="integer", minimum=0, description="0: the deployment's baseline"),
        "start_hour": Param(START_HOUR, type="integer", minimum=0, maximum=23),
        "end_hour": Param(END_HOUR, type="integer", minimum=0, maximum=23),
        "lead_minutes": Param(LEAD_MINUTES, type="integer", minimum=0, maximum=1439),
        "timezone": Param(TIMEZONE, type="string"),
        "weekdays": Param(WEEKDAYS, type="string", description="cron day-of-week field"),
    },
    tags=["example", "elasticsearch-ml"],
) as dag:
    reserve = ReserveDeploymentOperator(
        task_id="reserve",
        number_of_allocations="{{ params.business_allocations }}",
        wait_for_completion=True,
        deferrable=True,
        poll_interval=5,
        timeout=1800,
        **WINDOW,
    )
    end_reservation = EndReservationOperator(
        task_id="end_reservation",
        off_hours_allocations="{{ params.off_hours_allocations }}",
        trigger_rule="all_done",  # also after a skipped reserve (the evening run) or a failed wait
        retries=3,
        **WINDOW,
    )
    reserve >> end_reservation  # reserve first: a new window's reservation before the old one ends
# [END howto_business_hours]
