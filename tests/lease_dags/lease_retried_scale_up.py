"""A scale-up task whose first try dies after scaling up, and a failing batch, each around one lease."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import DAG, task

from airflow_esml.lifecycle import scaled_deployment
from airflow_esml.operators.lease import AcquireDeploymentLeaseOperator, ReleaseDeploymentLeaseOperator

START = pendulum.datetime(2026, 1, 1, tz="UTC")


class FlakyAcquire(AcquireDeploymentLeaseOperator):
    """Scales up, then dies on its first try (as a worker lost right after the update would)."""

    def execute(self, context: Any) -> dict[str, Any]:
        result = super().execute(context)
        if context["ti"].try_number == 1:
            raise RuntimeError("worker lost after scaling up")
        return result


with DAG("lease_retried_scale_up", schedule=None, start_date=START) as retried:
    acquire = FlakyAcquire(
        task_id="acquire", deployment_id="my-e5", number_of_allocations=4, retries=1, retry_delay=timedelta(0)
    )
    release = ReleaseDeploymentLeaseOperator(task_id="release", deployment_id="my-e5")

    @task
    def batch() -> str:
        return "done"

    acquire.as_setup() >> batch() >> release.as_teardown(setups=acquire)


with DAG("lease_failing_batch", schedule=None, start_date=START) as failing:

    @task
    def broken_batch() -> None:
        raise RuntimeError("the batch failed")

    with scaled_deployment("my-e5", number_of_allocations=3, poll_interval=0.2, release_retries=0):
        broken_batch()
