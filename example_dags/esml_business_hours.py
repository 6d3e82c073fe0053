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

DOC_MD = f"""
### Business-hours capacity: a reservation of allocations for the working day

Runs twice a working day, at `start_hour` minus `lead_minutes` and at `end_hour` in `timezone` (the schedule is
built from the params' defaults). **reserve** takes the reservation of the window the run is in, so the
allocations are started when the window opens (skipped outside a window: the evening run);
**end_reservation** ends the window that ended last, leaving `off_hours_allocations` if above 0. Batch runs that
lease the same deployment get `max(baseline, every live lease)`; a reservation whose evening run never came
expires by itself 15 minutes after its window.

**Params**: `deployment_id` (default `my-e5`), `business_allocations` (8), `off_hours_allocations` (0: the
deployment's baseline), `start_hour` ({START_HOUR}), `end_hour` ({END_HOUR}), `lead_minutes` ({LEAD_MINUTES}),
`timezone` ({TIMEZONE}), `weekdays` ({WEEKDAYS}, cron day-of-week).

**Against the simulator** (no cluster needed; `pip install "airflow-esml[testing]"`): start one simulator that
serves every example DAG's deployments, point the default connection at it, and run the DAG:

```
python -m airflow_esml.testing.simulator --port 9200 --ml-node ml-node-1:8 --ml-node ml-node-2:8 \\
    --deploy my-e5:1 --deploy my-e5-a=my-e5:1 --deploy my-e5-b=my-e5:1
export AIRFLOW_CONN_ELASTICSEARCH_DEFAULT=elasticsearch://127.0.0.1:9200/http
airflow dags test esml_business_hours
```

Without a date, `airflow dags test` runs at the current time, so **reserve** is skipped outside the window; to
see it reserve, add the logical date of the next working day's morning run, for example
`airflow dags test esml_business_hours 2027-01-04T07:30:00+01:00` (a Monday, 07:30 in Amsterdam).
"""

with DAG(
    dag_id="esml_business_hours",
    schedule=MultipleCronTriggerTimetable(RESERVE_CRON, END_CRON, timezone=TIMEZONE),
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,
    params={
        "deployment_id": Param("my-e5", type="string", description="the deployment to reserve capacity on"),
        "business_allocations": Param(8, type="integer", minimum=1, description="allocations during the working day"),
        "off_hours_allocations": Param(
            0, type="integer", minimum=0, description="allocations after the window; 0: the deployment's baseline"
        ),
        "start_hour": Param(START_HOUR, type="integer", minimum=0, maximum=23, description="the window's start"),
        "end_hour": Param(END_HOUR, type="integer", minimum=0, maximum=23, description="the window's end"),
        "lead_minutes": Param(
            LEAD_MINUTES,
            type="integer",
            minimum=0,
            maximum=1439,
            description="minutes before the window to reserve, so the allocations are started when it opens",
        ),
        "timezone": Param(TIMEZONE, type="string", description="the IANA timezone of the hours"),
        "weekdays": Param(WEEKDAYS, type="string", description="the working days: a cron day-of-week field"),
    },
    doc_md=DOC_MD,
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
