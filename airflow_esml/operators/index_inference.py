"""IndexInferenceOperator: batch inference inside Elasticsearch (``_reindex`` / ``_update_by_query`` as a task)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_esml.core.params import (
    DEFAULT_CONN_ID,
    DEFAULT_INDEX_TASK_TIMEOUT,
    DEFAULT_PROGRESS_INTERVAL,
    DEFAULT_TASK_POLL_INTERVAL,
    DEFAULT_TASKS_INDEX,
    check_id,
    is_unset,
    parse_index_batch,
    parse_optional_mapping,
    seconds,
)
from airflow_esml.exceptions import IndexTaskError, IndexTaskTimeoutError, InvalidParameterError, TransientRequestError
from airflow_esml.links import TrainedModelsLink

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_esml.core.index_tasks import BatchPlan, TaskProgress
    from airflow_esml.hooks.tasks import ElasticsearchTasksHook


class IndexInferenceOperator(BaseOperator):
    """Run batch inference inside Elasticsearch: no document passes through the Airflow worker.

    With ``dest_index`` it runs ``_reindex`` from ``source_index`` to ``dest_index``; without, it runs
    ``_update_by_query`` on ``source_index`` in place. The documents go through ``pipeline`` (an ingest
    pipeline with an ``inference`` processor), or, without one, into an index whose mapping infers
    (``semantic_text``). Either way the batch is an Elasticsearch task (``wait_for_completion=false``).

    ``slices`` and ``batch_size`` are chosen from the deployment's started allocations x threads per
    allocation and its ``queue_capacity``, so every allocation stays busy without 429s
    (:func:`~airflow_esml.core.index_tasks.plan_batches`); both can be given instead. The task waits for
    the Elasticsearch task, deferred to the triggerer or polling in the worker, and logs its progress
    (documents done of the total, docs/s, ETA). Per-document failures from the task's result fail the task
    or are logged as a WARNING (``on_document_failure``). ``on_kill`` cancels the Elasticsearch task, and
    the wait is bounded by ``timeout`` (the Elasticsearch task is then cancelled as well).

    A retried task instance resumes waiting on the Elasticsearch task of its earlier try instead of starting
    a second one: the task id is kept in ``tasks_index`` (XComs of a try are cleared when it is retried). A
    task that finished successfully is not run again; one that failed, was cancelled or timed out is.

    The XCom result has the Elasticsearch task id, the mode, the batch plan and the final counts
    (``progress``: total, created, updated, batches, failures).

    .. seealso:: docs/in-cluster-inference.md

    :param source_index: the index (or alias, or comma-separated indices) to read. (templated)
    :param dest_index: the index to write; unset: update ``source_index`` in place. (templated)
    :param pipeline: the ingest pipeline with the ``inference`` processor; unset: the destination's mapping
        infers (``semantic_text``), or its default pipeline. (templated)
    :param query: only the documents matching this query (a dict, or its JSON text). (templated)
    :param deployment_id: the deployment that infers, read to size the batch; may be unset when both
        ``slices`` and ``batch_size`` are given. (templated)
    :param slices: parallel slices of the task; default one per allocation thread (at most 32). (templated)
    :param batch_size: documents per batch (the scroll size); default what keeps the whole task inside the
        deployment's queue, at most 1000. (templated)
    :param conflicts: ``"abort"`` (default) or ``"proceed"`` on version conflicts.
    :param requests_per_second: throttle of the task (documents per second); unset: no throttle. (templated)
    :param max_docs: at most this many documents. (templated)
    :param on_document_failure: ``"fail"`` (default) fails the task when documents failed; ``"warn"`` logs
        them and succeeds (Elasticsearch stops the task at the first failed batch either way).
    :param elasticsearch_conn_id: the Airflow connection to the cluster. (templated)
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param poll_interval: seconds between two looks at the Elasticsearch task.
    :param timeout: seconds the batch may run (per try); then it is cancelled and the task fails.
    :param progress_interval: seconds between two progress lines, at least.
    :param tasks_index: the index that keeps each task instance's Elasticsearch task id.
    """

    template_fields: Sequence[str] = (
        "source_index",
        "dest_index",
        "pipeline",
        "query",
        "deployment_id",
        "slices",
        "batch_size",
        "requests_per_second",
        "max_docs",
        "elasticsearch_conn_id",
    )
    template_fields_renderers = {"query": "json"}
    operator_extra_links = (TrainedModelsLink(),)
    ui_color = "#c9e7d6"

    def __init__(
        self,
        *,
        source_index: str,
        dest_index: str | None = None,
        pipeline: str | None = None,
        query: dict[str, Any] | str | None = None,
        deployment_id: str | None = None,
        slices: int | str | None = None,
        batch_size: int | str | None = None,
        conflicts: str = "abort",
        requests_per_second: float | str | None = None,
        max_docs: int | str | None = None,
        on_document_failure: str = "fail",
        elasticsearch_conn_id: str = DEFAULT_CONN_ID,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = DEFAULT_TASK_POLL_INTERVAL,
        timeout: float | timedelta = DEFAULT_INDEX_TASK_TIMEOUT,
        progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
        tasks_index: str = DEFAULT_TASKS_INDEX,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source_index = source_index
        self.dest_index = dest_index
        self.pipeline = pipeline
        self.query = query
        self.deployment_id = deployment_id
        self.slices = slices
        self.batch_size = batch_size
        self.conflicts = conflicts
        self.requests_per_second = requests_per_second
        self.max_docs = max_docs
        self.on_document_failure = on_document_failure
        self.elasticsearch_conn_id = elasticsearch_conn_id
        self.deferrable = deferrable
        self.poll_interval = seconds("poll_interval", poll_interval)
        self.timeout = seconds("timeout", timeout)
        self.progress_interval = seconds("progress_interval", progress_interval, zero_ok=True)
        self.tasks_index = check_id("tasks_index", tasks_index)
        self._es_task_id: str | None = None

    @cached_property
    def hook(self) -> ElasticsearchTasksHook:
        from airflow_esml.hooks.tasks import ElasticsearchTasksHook  # loads the elasticsearch client

        return ElasticsearchTasksHook(self.elasticsearch_conn_id)

    # -- run ------------------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        batch = self._parameters()
        query = parse_optional_mapping("query", self.query)
        if self.deployment_id and self.hook.kibana_url:
            TrainedModelsLink.persist(context, self.hook.kibana_url, self.deployment_id)
        key = self._key(context)
        result = self._result(batch, query)
        task_id, result["batch_plan"] = self._start_or_resume(batch, query, key, context)
        self._es_task_id = result["task_id"] = task_id
        context["ti"].xcom_push(key="es_task_id", value=task_id)
        return self._wait(task_id, result, time.time() + self.timeout)

    def _start_or_resume(
        self, batch: dict[str, Any], query: dict[str, Any] | None, key: str, context: Context
    ) -> tuple[str, dict[str, Any] | None]:
        """The Elasticsearch task to wait on: the one an earlier try started, when it may be resumed, else a new
        one; its id and batch plan."""
        earlier = self._earlier_task(key)
        if earlier is not None:
            return earlier["task_id"], earlier.get("batch_plan")
        return self._start_new(batch, query, key, context)

    def _start_new(
        self, batch: dict[str, Any], query: dict[str, Any] | None, key: str, context: Context
    ) -> tuple[str, dict[str, Any]]:
        """Plan and start the Elasticsearch task, and remember it under ``key`` for a retry; its id and batch plan."""
        plan = self._plan(batch)
        self.log.info("%s: %s", self._what(batch), plan.describe())
        task_id = self._start(batch, query, plan)
        record = {"task_id": task_id, "batch_plan": plan.to_dict(), "try_number": _try_number(context)}
        self.hook.remember_task(self.tasks_index, key, record)
        return task_id, plan.to_dict()

    @staticmethod
    def _result(batch: dict[str, Any], query: dict[str, Any] | None) -> dict[str, Any]:
        return {"mode": "reindex" if batch["dest_index"] else "update_by_query", **batch, "query": query}

    def _parameters(self) -> dict[str, Any]:
        batch = parse_index_batch(
            source_index=self.source_index,
            dest_index=self.dest_index,
            pipeline=self.pipeline,
            slices=self.slices,
            batch_size=self.batch_size,
            conflicts=self.conflicts,
            on_document_failure=self.on_document_failure,
            requests_per_second=self.requests_per_second,
            max_docs=self.max_docs,
        )
        if is_unset(self.deployment_id) and (batch["slices"] is None or batch["batch_size"] is None):
            raise InvalidParameterError(
                f"deployment_id is needed to size the batch unless slices and batch_size are both given, got "
                f"deployment_id={self.deployment_id!r}, slices={self.slices!r}, batch_size={self.batch_size!r}"
            )
        return batch

    def _key(self, context: Context) -> str:
        map_index = getattr(context["ti"], "map_index", -1)
        return f"{self.dag_id}/{context['run_id']}/{self.task_id}/{map_index}"

    def _earlier_task(self, key: str) -> dict[str, Any] | None:
        """The Elasticsearch task an earlier try started, when the wait should resume on it.

        Resumed: a task still running, or one that completed successfully (its result is taken). A task that
        failed, was cancelled or is gone is started again.
        """
        from airflow_esml.core.index_tasks import judge_task, parse_task

        record = self.hook.recall_task(self.tasks_index, key)
        if not record or not record.get("task_id"):
            return None
        task_id = str(record["task_id"])
        try:
            progress = parse_task(task_id, self.hook.get_task(task_id))
        except Exception as exc:
            self.log.warning("task %s of an earlier try cannot be read (%s); starting a new one", task_id, exc)
            return None
        if progress.completed and judge_task(progress, self.on_document_failure) is not None:
            self.log.info("task %s of an earlier try ended badly (%s); starting a new one", task_id,
                          progress.describe())  # fmt: skip
            return None
        self.log.info("resuming on task %s, started by try %s: %s", task_id, record.get("try_number"),
                      progress.describe())  # fmt: skip
        return record

    def _plan(self, batch: dict[str, Any]) -> BatchPlan:
        from airflow_esml.core.index_tasks import BatchPlan, plan_batches

        status = None
        if not is_unset(self.deployment_id):
            status = self.hook.get_deployment(str(self.deployment_id))
            if status.started_allocations < 1:
                raise IndexTaskError(
                    f"{self.deployment_id}: no allocation is started ({status.describe_nodes()}); scale it up and "
                    "wait for it (scaled_deployment) before the batch"
                )
        if status is None:
            return BatchPlan(batch["slices"], batch["batch_size"], 0, 0, ("sized by the task's parameters",))
        return plan_batches(status, slices=batch["slices"], size=batch["batch_size"])

    def _start(self, batch: dict[str, Any], query: dict[str, Any] | None, plan: BatchPlan) -> str:
        common = {
            "slices": plan.slices,
            "conflicts": batch["conflicts"],
            "requests_per_second": batch["requests_per_second"],
            "max_docs": batch["max_docs"],
        }
        if batch["dest_index"]:
            source: dict[str, Any] = {"index": batch["source_index"], "size": plan.size}
            if query is not None:
                source["query"] = query
            dest = {"index": batch["dest_index"]}
            if batch["pipeline"]:
                dest["pipeline"] = batch["pipeline"]
            task_id = self.hook.start_reindex(source=source, dest=dest, **common)
        else:
            task_id = self.hook.start_update_by_query(
                batch["source_index"], scroll_size=plan.size, pipeline=batch["pipeline"], query=query, **common
            )
        self.log.info("%s: started Elasticsearch task %s", self._what(batch), task_id)
        return task_id

    @staticmethod
    def _what(batch: dict[str, Any]) -> str:
        through = f" through pipeline {batch['pipeline']}" if batch["pipeline"] else ""
        if batch["dest_index"]:
            return f"reindex {batch['source_index']} -> {batch['dest_index']}{through}"
        return f"update by query on {batch['source_index']}{through}"

    # -- wait -----------------------------------------------------------------------------------------

    def _wait(self, task_id: str, result: dict[str, Any], end_time: float) -> dict[str, Any]:
        """Wait for the task until ``end_time``: look once, then defer, or poll here."""
        progress = self._look(task_id)
        if progress is not None and progress.completed:
            return self._finish(progress, result)
        if self.deferrable:
            from airflow_esml.triggers.task import IndexTaskTrigger  # loads Airflow's trigger machinery

            trigger = IndexTaskTrigger(
                task_id=task_id,
                elasticsearch_conn_id=self.elasticsearch_conn_id,
                end_time=end_time,
                poll_interval=self.poll_interval,
                progress_interval=self.progress_interval,
            )
            self.defer(
                trigger=trigger,
                method_name="execute_complete",
                kwargs={"result": result},
                timeout=timedelta(seconds=max(0.0, end_time - time.time()) + 60),
            )
        logged = 0.0
        while time.time() < end_time:
            time.sleep(min(self.poll_interval, max(0.0, end_time - time.time())))
            progress = self._look(task_id) or progress
            if progress is not None and progress.completed:
                return self._finish(progress, result)
            if progress is not None and time.time() - logged >= self.progress_interval:
                self.log.info("task %s: %s", task_id, progress.describe())
                logged = time.time()
        return self._timed_out(task_id, progress)

    def _look(self, task_id: str) -> TaskProgress | None:
        from airflow_esml.core.index_tasks import parse_task

        try:
            return parse_task(task_id, self.hook.get_task(task_id, deadline=time.time() + self.poll_interval * 2))
        except TransientRequestError as exc:
            self.log.warning("task %s: no answer (%s); looking again", task_id, exc)
            return None

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, result: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Resume after the trigger's event: the task's result, or its failure, timeout or disappearance."""
        event, result = event or {}, dict(result or {})
        task_id = str(event.get("task_id") or result.get("task_id"))
        self._es_task_id = task_id
        if not result:  # the resume kwargs did not come back (dag.test() of some Airflow versions drops them)
            result = self._rebuilt_result(task_id, context)
        return self._outcome(task_id, event, result)

    def _rebuilt_result(self, task_id: str, context: Context) -> dict[str, Any]:
        """The XCom result that ``execute`` handed to the deferral, built again from the parameters and the
        record of the Elasticsearch task."""
        result = self._result(self._parameters(), parse_optional_mapping("query", self.query))
        record = self.hook.recall_task(self.tasks_index, self._key(context)) or {}
        result.update(task_id=task_id, batch_plan=record.get("batch_plan"))
        return result

    def _outcome(self, task_id: str, event: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
        """The XCom result of the trigger's event; raises for a failed, timed out or vanished task."""
        from airflow_esml.core.index_tasks import TaskProgress

        progress = TaskProgress.from_dict(event["progress"]) if event.get("progress") else None
        if event.get("status") == "success" and progress is not None:
            return self._finish(progress, result)
        if event.get("status") == "timeout":
            return self._timed_out(task_id, progress)
        raise IndexTaskError(f"task {task_id}: {event.get('message') or event}")

    def _finish(self, progress: TaskProgress, result: dict[str, Any]) -> dict[str, Any]:
        from airflow_esml.core.index_tasks import judge_task

        self._es_task_id = None  # nothing left to cancel
        self.log.info("task %s: %s", progress.task_id, progress.describe())
        reason = judge_task(progress, str(result.get("on_document_failure", self.on_document_failure)))
        if reason:
            raise IndexTaskError(reason)
        if progress.failure_count:
            self.log.warning("task %s: %d document(s) failed, first: %s", progress.task_id, progress.failure_count,
                             progress.failures)  # fmt: skip
        return {**result, "progress": progress.to_dict()}

    def _timed_out(self, task_id: str, progress: TaskProgress | None) -> dict[str, Any]:
        self._cancel(task_id, "the wait timed out")
        seen = progress.describe() if progress else "no progress seen"
        raise IndexTaskTimeoutError(f"task {task_id} did not end within {self.timeout:.0f}s ({seen}); cancelled it")

    def _cancel(self, task_id: str, why: str) -> None:
        try:
            self.hook.cancel_task(task_id)
            self.log.warning("task %s cancelled: %s", task_id, why)
        except Exception as exc:
            self.log.warning("task %s: could not cancel (%s)", task_id, exc)

    def on_kill(self) -> None:
        """Cancel the Elasticsearch task: a batch nobody waits for would keep the allocations busy.

        In deferrable mode the trigger's ``on_kill`` does it (Airflow 3.3+).
        """
        if self._es_task_id:
            self._cancel(self._es_task_id, "the Airflow task was killed")


def _try_number(context: Context) -> int | None:
    return getattr(context.get("ti"), "try_number", None)
