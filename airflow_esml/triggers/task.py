"""IndexTaskTrigger: waits in the triggerer until an Elasticsearch task (``_reindex``, ``_update_by_query``)
completes, logging its progress."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_esml.core.index_tasks import TaskProgress, parse_task
from airflow_esml.core.params import DEFAULT_PROGRESS_INTERVAL
from airflow_esml.exceptions import IndexTaskNotFoundError, TransientRequestError


class IndexTaskTrigger(BaseTrigger):
    """Polls ``GET _tasks/<task_id>`` every ``poll_interval`` seconds until the task completes or ``end_time``.

    Yields one event: ``{"status": "success", "progress": ...}`` when the task completed (whatever its
    result: the operator judges failures and cancellation), ``{"status": "timeout", ...}`` at ``end_time``
    (an absolute wall-clock time, computed before deferring, so a triggerer restart does not reset it), or
    ``{"status": "error", "message": ...}`` when the task is unknown. Transient errors are logged and polled
    through. The trigger is stateless: a duplicate copy only reads twice.

    ``on_kill`` (Airflow 3.3+, when a user marks the deferred task failed or clears it) cancels the
    Elasticsearch task, as the operator's ``on_kill`` does in the worker: a batch nobody waits for any more
    would keep the scaled-up allocations busy. A triggerer restart does not call it.

    :param task_id: the Elasticsearch task id (``node:number``).
    :param elasticsearch_conn_id: the Airflow connection to the cluster.
    :param end_time: when to give up (epoch seconds).
    :param poll_interval: seconds between two looks.
    :param progress_interval: seconds between two progress lines, at least.
    """

    def __init__(
        self,
        *,
        task_id: str,
        elasticsearch_conn_id: str,
        end_time: float,
        poll_interval: float,
        progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
    ) -> None:
        super().__init__()
        self.es_task_id = task_id
        self.elasticsearch_conn_id = elasticsearch_conn_id
        self.end_time = end_time
        self.poll_interval = poll_interval
        self.progress_interval = progress_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "task_id": self.es_task_id,
                "elasticsearch_conn_id": self.elasticsearch_conn_id,
                "end_time": self.end_time,
                "poll_interval": self.poll_interval,
                "progress_interval": self.progress_interval,
            },
        )

    def _hook(self) -> Any:
        from airflow_esml.hooks.tasks import ElasticsearchTasksHook  # loads the elasticsearch client

        return ElasticsearchTasksHook(self.elasticsearch_conn_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._hook()
        try:
            event = await self._watch(hook)
        finally:
            await hook.aclose()
        yield TriggerEvent(event)

    async def _watch(self, hook: Any) -> dict[str, Any]:
        last: TaskProgress | None = None
        logged = 0.0
        while True:
            try:
                last = parse_task(self.es_task_id, await hook.aget_task(self.es_task_id, deadline=self.end_time))
            except IndexTaskNotFoundError as exc:
                return {"status": "error", "task_id": self.es_task_id, "message": str(exc)}
            except TransientRequestError as exc:
                self.log.warning("task %s: no answer (%s); looking again", self.es_task_id, exc)
            if last is not None and last.completed:
                return {"status": "success", "task_id": self.es_task_id, "progress": last.to_dict()}
            now = time.time()
            if now >= self.end_time:
                return {
                    "status": "timeout",
                    "task_id": self.es_task_id,
                    "progress": last.to_dict() if last else None,
                }
            if last is not None and now - logged >= self.progress_interval:
                self.log.info("task %s: %s", self.es_task_id, last.describe())
                logged = now
            await asyncio.sleep(min(self.poll_interval, max(0.0, self.end_time - now)))

    async def on_kill(self) -> None:
        """Cancel the Elasticsearch task: the user stopped the Airflow task that waits for it."""
        hook = self._hook()
        try:
            await asyncio.to_thread(hook.cancel_task, self.es_task_id)
            self.log.info("task %s: cancelled (the Airflow task was stopped)", self.es_task_id)
        except Exception as exc:
            self.log.warning("task %s: could not cancel (%s)", self.es_task_id, exc)
        finally:
            hook.close()
