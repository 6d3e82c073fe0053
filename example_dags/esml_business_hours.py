"""Business-hours capacity: more allocations during the working day, fewer outside it.

One DAG runs at the start and at the end of each working day (two cron schedules in one timetable). Each
run decides from its own time whether business hours are starting or ending, and sets the deployment to
``business_allocations`` or ``off_hours_allocations``; in business hours it also waits until they are
started. Counts and hours are params, so a manual run can use other values.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param, task

try:
    from airflow.sdk import MultipleCronTriggerTimetable
except ImportError:  # Airflow 3.1 has it only in core
    from airflow.timetables.trigger import MultipleCronTriggerTimetable  # type: ignore[no-redef]

from airflow_esml.operators.deployment import UpdateDeploymentOperator
from airflow_esml.sensors.deployment import AllocationsStartedSensor

TIMEZONE = "Europe/Amsterdam"

# [START howto_business_hours]
with DAG(
    dag_id="esml_business_hours",
    schedule=MultipleCronTriggerTimetable("0 8 * * 1-5", "0 18 * * 1-5", timezone=TIMEZONE),
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,
    params={
        "deployment_id": Param("my-e5", type="string"),
        "business_allocations": Param(8, type="integer", minimum=1),
        "off_hours_allocations": Param(1, type="integer", minimum=1),
        "start_hour": Param(8, type="integer", minimum=0, maximum=23),
        "end_hour": Param(18, type="integer", minimum=0, maximum=23),
    },
    tags=["example", "elasticsearch-ml"],
) as dag:

    @task
    def allocations_for_now(params: dict | None = None, logical_date: pendulum.DateTime | None = None) -> int:
        """The count for this run: business_allocations from start_hour to end_hour, else off_hours_allocations."""
        assert params is not None
        hour = pendulum.instance(logical_date or pendulum.now()).in_timezone(TIMEZONE).hour
        in_hours = params["start_hour"] <= hour < params["end_hour"]
        return params["business_allocations"] if in_hours else params["off_hours_allocations"]

    count = allocations_for_now()
    scale = UpdateDeploymentOperator(
        task_id="scale",
        deployment_id="{{ params.deployment_id }}",
        number_of_allocations=count,
    )
    wait = AllocationsStartedSensor(
        task_id="wait_for_allocations",
        deployment_id="{{ params.deployment_id }}",
        min_allocations=count,
        deferrable=True,
        poke_interval=5,
        timeout=1800,
    )
    count >> scale >> wait
# [END howto_business_hours]
