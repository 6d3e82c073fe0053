"""ElasticsearchTasksHook: ``_reindex`` and ``_update_by_query`` as Elasticsearch tasks, and ``_tasks/<id>``.

The batch runs inside the cluster (``wait_for_completion=false``): the start call answers with a task id at
once, and ``GET _tasks/<id>`` reports its progress and, once ``completed``, its result (kept in the ``.tasks``
index). ``POST _tasks/<id>/_cancel`` stops it. See the Elasticsearch docs pages "Reindex API", "Update by
query API" and "Task management API".
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import elasticsearch

from airflow_esml.core.params import check_id, shown
from airflow_esml.exceptions import DeploymentNotFoundError, ElasticsearchRequestError, IndexTaskNotFoundError
from airflow_esml.hooks.ml import ElasticsearchMLHook

# clients that mark the task management API "technical preview" warn on every call: one warning per poll in task
# logs (older clients have no such warning)
_PREVIEW_WARNING = getattr(elasticsearch.exceptions, "GeneralAvailabilityWarning", None)
if _PREVIEW_WARNING is not None:
    warnings.filterwarnings("ignore", category=_PREVIEW_WARNING, message=".*technical preview.*")


class ElasticsearchTasksHook(ElasticsearchMLHook):
    """The deployment hook, plus the calls that run and watch batch inference inside Elasticsearch.

    Starting a task is retried only when Elasticsearch refused it (429, 503): after a reset or a timeout it
    may have started, and a second start would run the batch twice, so that error is raised instead.

    :param elasticsearch_conn_id: the Airflow connection to use.
    """

    def start_reindex(
        self,
        *,
        source: Mapping[str, Any],
        dest: Mapping[str, Any],
        slices: int | str,
        conflicts: str = "abort",
        requests_per_second: float | None = None,
        max_docs: int | None = None,
    ) -> str:
        """``POST _reindex?wait_for_completion=false``; returns the task id (``node:number``).

        :param source: the ``source`` object (``index``, ``query``, ``size`` = documents per batch).
        :param dest: the ``dest`` object (``index``, ``pipeline``).
        """
        body: dict[str, Any] = {"source": dict(source), "dest": dict(dest), "conflicts": conflicts}
        if max_docs is not None:
            body["max_docs"] = max_docs
        kwargs: dict[str, Any] = {"slices": slices, "wait_for_completion": False, "body": body}
        if requests_per_second is not None:
            kwargs["requests_per_second"] = requests_per_second
        what = f"reindex {shown(source.get('index'))} -> {shown(dest.get('index'))}"
        return self._start(what, self.client.reindex, **kwargs)

    def start_update_by_query(
        self,
        index: str,
        *,
        slices: int | str,
        scroll_size: int,
        pipeline: str | None = None,
        query: Mapping[str, Any] | None = None,
        conflicts: str = "abort",
        requests_per_second: float | None = None,
        max_docs: int | None = None,
    ) -> str:
        """``POST <index>/_update_by_query?wait_for_completion=false``; returns the task id.

        :param scroll_size: documents per batch.
        """
        check_id("index", index)
        kwargs: dict[str, Any] = {
            "index": index,
            "slices": slices,
            "scroll_size": scroll_size,
            "conflicts": conflicts,
            "wait_for_completion": False,
        }
        for name, value in (("pipeline", pipeline), ("requests_per_second", requests_per_second),
                            ("max_docs", max_docs)):  # fmt: skip
            if value is not None:
                kwargs[name] = value
        if query is not None:
            kwargs["query"] = dict(query)
        return self._start(f"update by query on {shown(index)}", self.client.update_by_query, **kwargs)

    def _start(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> str:
        def once() -> Any:
            try:
                return fn(**kwargs)
            except (elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout) as exc:
                # the request may have reached the cluster and started the task: never start it twice
                raise ElasticsearchRequestError(
                    f"{what}: no answer to the start request ({type(exc).__name__}); it may have started a task: "
                    "look for it with GET _tasks?actions=*reindex,*byquery&detailed before running the task again"
                ) from exc
            except elasticsearch.ApiError as exc:
                if exc.meta.status in (502, 504):  # a proxy's answer: the cluster may have started it
                    raise ElasticsearchRequestError(
                        f"{what}: {exc.meta.status} from a proxy; it may have started a task, look for it before "
                        "running the task again"
                    ) from exc
                raise

        body = self.retry.call(what, once).body
        task = body.get("task")
        if not task:
            raise ElasticsearchRequestError(f"{what}: the answer names no task ({shown(body)})")
        return str(task)

    def get_task(self, task_id: str, *, deadline: float | None = None) -> dict[str, Any]:
        """``GET _tasks/<task_id>``: ``completed``, ``task`` (with ``status``) and, once completed, ``response``
        or ``error``.

        :raises IndexTaskNotFoundError: no such task.
        """
        check_id("task_id", task_id)
        try:
            response = self.retry.call(
                f"task {shown(task_id)}",
                lambda: self._within(self.client, deadline).tasks.get(task_id=task_id),
                deadline=deadline,
            )
        except DeploymentNotFoundError as exc:  # the 404 translation of the retry module
            raise IndexTaskNotFoundError(str(exc)) from exc
        return dict(response.body)

    async def aget_task(self, task_id: str, *, deadline: float | None = None) -> dict[str, Any]:
        """Asynchronous :meth:`get_task`, for the trigger."""
        check_id("task_id", task_id)
        client = await self.aclient()
        try:
            response = await self.retry.acall(
                f"task {shown(task_id)}",
                lambda: self._within(client, deadline).tasks.get(task_id=task_id),
                deadline=deadline,
            )
        except DeploymentNotFoundError as exc:
            raise IndexTaskNotFoundError(str(exc)) from exc
        return dict(response.body)

    def cancel_task(self, task_id: str) -> dict[str, Any]:
        """``POST _tasks/<task_id>/_cancel`` (a sliced task cancels its slices too)."""
        check_id("task_id", task_id)
        return dict(self.retry.call(f"cancel of task {shown(task_id)}", self.client.tasks.cancel, task_id=task_id).body)

    def count(self, index: str, query: Mapping[str, Any] | None = None) -> int:
        """``GET <index>/_count``: the documents a batch will go through (for progress before the task knows)."""
        check_id("index", index)
        kwargs: dict[str, Any] = {"index": index}
        if query is not None:
            kwargs["query"] = dict(query)
        return int(self.retry.call(f"count of {shown(index)}", self.client.count, **kwargs).body.get("count", 0))

    # -- the Elasticsearch task of an Airflow task, kept across its tries ------------------------------

    def remember_task(self, index: str, key: str, record: Mapping[str, Any]) -> None:
        """Keep ``record`` (the Elasticsearch task id of an Airflow task instance) in ``index`` under ``key``.

        XComs of a try are cleared when the task instance is retried, so the id lives in a small document.
        """
        self.retry.call(
            f"record of task {shown(key)}",
            self.client.index,
            index=index,
            id=record_id(key),
            document={**record, "key": key},
            refresh="wait_for",
        )

    def recall_task(self, index: str, key: str) -> dict[str, Any] | None:
        """The record :meth:`remember_task` kept under ``key`` (None when there is none)."""
        try:
            body = self.retry.call(f"record of task {shown(key)}", self.client.get, index=index, id=record_id(key)).body
        except DeploymentNotFoundError:  # the 404 translation: no such document, or no index yet
            return None
        source = body.get("_source") if body.get("found", True) else None
        return dict(source) if source and source.get("key") == key else None


def record_id(key: str) -> str:
    """The document id of ``key``: itself, or its SHA-256 when longer than Elasticsearch's 512 bytes."""
    if len(key.encode()) <= 512:
        return key
    return hashlib.sha256(key.encode()).hexdigest()
