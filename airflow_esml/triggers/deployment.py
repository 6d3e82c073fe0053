"""AllocationsStartedTrigger: waits in the triggerer until a deployment's allocations are started."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_esml.core.readiness import Verdict, WaitWindow
from airflow_esml.triggers.poller import wait_until_started


class AllocationsStartedTrigger(BaseTrigger):
    """Watches a deployment's stats until ``min_allocations`` allocations are started.

    All such triggers of one triggerer that use the same connection share one stats poller
    (:mod:`airflow_esml.triggers.poller`): the cluster sees one stats request per interval whatever the
    number of waiting triggers, and each trigger learns of readiness within about one interval.

    Yields exactly one event, ``{"status": "success" | "failed" | "timeout", "message": ...,
    "deployment": <last status seen>}``, and never raises: errors become ``failed`` events.

    ``end_time`` is an absolute wall-clock deadline computed before deferring, so a triggerer restart
    does not extend the wait. Polling only reads, so duplicate copies of the trigger (triggerer HA) are
    harmless. There is no ``on_kill`` rollback: scaling back is the job of the teardown task.

    :param deployment_id: the deployment to watch, by its own id: a task given an inference id resolves it (once,
        before it defers) to the deployment the endpoint uses.
    :param elasticsearch_conn_id: the Airflow connection to use.
    :param min_allocations: started allocations needed; None means the deployment's whole target.
    :param started_at: when the wait began (epoch seconds), for the progress line.
    :param end_time: the absolute deadline (epoch seconds).
    :param poll_interval: the longest time in seconds between two looks at the deployment; the shared
        poller polls at the shortest interval among its waiters.
    """

    def __init__(
        self,
        *,
        deployment_id: str,
        elasticsearch_conn_id: str,
        min_allocations: int | None,
        started_at: float,
        end_time: float,
        poll_interval: float,
    ) -> None:
        super().__init__()
        self.deployment_id = deployment_id
        self.elasticsearch_conn_id = elasticsearch_conn_id
        self.min_allocations = min_allocations
        self.started_at = started_at
        self.end_time = end_time
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "deployment_id": self.deployment_id,
                "elasticsearch_conn_id": self.elasticsearch_conn_id,
                "min_allocations": self.min_allocations,
                "started_at": self.started_at,
                "end_time": self.end_time,
                "poll_interval": self.poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        verdict = await self._wait()
        yield TriggerEvent(verdict.to_event())

    async def _wait(self) -> Verdict:
        """Wait through the event loop's shared stats poller for this connection.

        Every trigger of the triggerer waiting on the same cluster subscribes to one
        :class:`~airflow_esml.triggers.poller.DeploymentPoller`, which sends one stats request per
        interval (the shortest ``poll_interval`` among the waiters) for all of their deployments.
        """
        window = WaitWindow(self.started_at, self.end_time)
        try:
            return await wait_until_started(
                conn_id=self.elasticsearch_conn_id,
                deployment_id=self.deployment_id,
                min_allocations=self.min_allocations,
                window=window,
                interval=self.poll_interval,
                logger=self.log,
            )
        except Exception as exc:  # a structured event beats a trigger crash
            return Verdict("failed", f"{self.deployment_id}: {type(exc).__name__}: {exc}")
