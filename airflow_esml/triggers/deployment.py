"""AllocationsStartedTrigger: waits in the triggerer until a deployment's allocations are started."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_esml.exceptions import EsmlError, TransientRequestError
from airflow_esml.readiness import Verdict, WaitWindow, assess


class AllocationsStartedTrigger(BaseTrigger):
    """Polls a deployment's stats until ``min_allocations`` allocations are started.

    Yields exactly one event, ``{"status": "success" | "failed" | "timeout", "message": ...,
    "deployment": <last status seen>}``, and never raises: errors become ``failed`` events.

    ``end_time`` is an absolute wall-clock deadline computed before deferring, so a triggerer restart
    does not extend the wait. Polling only reads, so duplicate copies of the trigger (triggerer HA) are
    harmless. There is no ``on_kill`` rollback: scaling back is the job of the teardown task.

    :param deployment_id: the deployment to watch.
    :param elasticsearch_conn_id: the Airflow connection to use.
    :param min_allocations: started allocations needed; None means the deployment's whole target.
    :param started_at: when the wait began (epoch seconds), for the progress line.
    :param end_time: the absolute deadline (epoch seconds).
    :param poll_interval: seconds between two stats requests.
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
        from airflow_esml.hooks.ml import (
            ElasticsearchMLHook,  # here, so that DAG files never import the client
        )

        window = WaitWindow(self.started_at, self.end_time)
        hook = ElasticsearchMLHook(self.elasticsearch_conn_id)
        verdict = Verdict("waiting", f"{self.deployment_id}: no status yet")
        try:
            while True:
                try:
                    status = await hook.aget_deployment(self.deployment_id)
                    verdict = assess(status, self.min_allocations, progress=window.progress())
                except TransientRequestError as exc:  # still failing after the hook's retries
                    verdict = Verdict(
                        "waiting", f"{self.deployment_id}: {exc}; will poll again", verdict.status
                    )
                self.log.info("%s", verdict.message)
                if verdict.done:
                    return verdict
                if window.expired():
                    return window.timed_out(verdict)
                await asyncio.sleep(min(self.poll_interval, window.remaining()))
        except EsmlError as exc:
            return Verdict("failed", str(exc), verdict.status)
        except Exception as exc:  # a structured event beats a trigger crash
            return Verdict("failed", f"{self.deployment_id}: {type(exc).__name__}: {exc}", verdict.status)
        finally:
            await hook.aclose()
