"""The task manager: ids ``node:number``, running tasks, cancellation and the results kept in ``.tasks``.

As ``TaskManager`` and ``TaskResultsService`` in elastic/elasticsearch (server/src/main/java/org/elasticsearch/
tasks/). A task started with ``wait_for_completion=false`` stores its result in the ``.tasks`` index when it
finishes (``{"completed": true, "task": ..., "response": ...}``); ``GET _tasks/<id>`` then reads it from there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_esml.testing.protocol import EsError

TASKS_INDEX = ".tasks"
# Every task thread is joined for at most this long when the simulator stops.
JOIN_SECONDS = 5.0


@dataclass
class Task:
    """One task as the task manager knows it.

    :param number: the task's number on its node.
    :param action: e.g. ``indices:data/write/reindex``.
    :param description: e.g. ``reindex from [src] to [dest]``.
    :param status: returns the live ``status`` object (``None`` for tasks without one).
    :param parent: the parent task id (``node:number``) of a slice.
    """

    number: int
    action: str
    description: str
    status: Callable[[], dict[str, Any] | None]
    parent: str | None = None
    start_wall: float = field(default_factory=time.time)
    start_mono: float = field(default_factory=time.monotonic)
    cancel_reason: str | None = None
    store_result: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, Any] | None = None
    children: list[Task] = field(default_factory=list)

    @property
    def cancelled(self) -> bool:
        return self.cancel_reason is not None


class TaskManager:
    """Registers tasks, runs their threads, and keeps their results.

    :param node_id: the id of the (single) data node that runs the tasks.
    :param node_name: its name.
    :param store: writes a finished task's document into ``.tasks``: ``store(index, id, source)``.
    :param read: reads a ``.tasks`` document: ``read(index, id)`` -> source or ``None``.
    """

    def __init__(
        self,
        *,
        node_id: str,
        node_name: str,
        store: Callable[[str, str, dict[str, Any]], None],
        read: Callable[[str, str], dict[str, Any] | None],
    ) -> None:
        self.node_id, self.node_name = node_id, node_name
        self._store, self._read = store, read
        self._lock = threading.Lock()
        self._next = 1000
        self._running: dict[int, Task] = {}
        self._threads: list[threading.Thread] = []
        self._closed = False

    # -- registry --------------------------------------------------------------------------------

    def task_id(self, task: Task) -> str:
        return f"{self.node_id}:{task.number}"

    def register(self, task: Task) -> Task:
        with self._lock:
            if self._closed:
                raise EsError(503, "node_closed_exception", "node closed")
            self._next += 1
            task.number = self._next
            self._running[task.number] = task
        return task

    def new_task(
        self,
        action: str,
        description: str,
        status: Callable[[], dict[str, Any] | None],
        *,
        parent: Task | None = None,
    ) -> Task:
        """Register a running task (a slice when ``parent`` is given)."""
        task = self.register(
            Task(0, action, description, status, parent=self.task_id(parent) if parent is not None else None)
        )
        if parent is not None:
            parent.children.append(task)
        return task

    def spawn(self, name: str, target: Callable[[], None]) -> None:
        """Start a task's thread (joined by :meth:`close`)."""
        thread = threading.Thread(target=target, name=name, daemon=True)
        with self._lock:
            if self._closed:
                raise EsError(503, "node_closed_exception", "node closed")
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def finish(self, task: Task, response: dict[str, Any] | None, error: dict[str, Any] | None = None) -> None:
        """Unregister a finished task; store its result in ``.tasks`` when it was asked to."""
        record: dict[str, Any] = {"completed": True, "task": self.info(task, detailed=True)}
        if error is not None:
            record["error"] = error
        else:
            record["response"] = response
        task.result = record
        if task.store_result:
            self._store(TASKS_INDEX, self.task_id(task), record)
        with self._lock:
            self._running.pop(task.number, None)
        task.done.set()

    def running(self) -> list[Task]:
        with self._lock:
            return sorted(self._running.values(), key=lambda t: t.number)

    def find(self, task_id: str) -> Task | None:
        """The running task with this id (after :func:`parse_task_id`)."""
        node, number = parse_task_id(task_id)
        if node != self.node_id:
            return None
        with self._lock:
            return self._running.get(number)

    def stored(self, task_id: str) -> dict[str, Any] | None:
        """The ``.tasks`` document of a finished task, or ``None``."""
        try:
            return self._read(TASKS_INDEX, task_id)
        except EsError:
            return None

    def cancel(self, task: Task, reason: str = "by user request") -> None:
        """Mark a task and its slices cancelled; their threads stop at the next batch."""
        for one in (task, *task.children):
            if one.cancel_reason is None:
                one.cancel_reason = reason

    def close(self) -> None:
        """Cancel every running task and join every task thread."""
        with self._lock:
            self._closed = True
            tasks, threads = list(self._running.values()), list(self._threads)
        for task in tasks:
            self.cancel(task, "node closed")
        for thread in threads:
            thread.join(JOIN_SECONDS)

    # -- rendering -------------------------------------------------------------------------------

    def info(self, task: Task, *, detailed: bool) -> dict[str, Any]:
        """``TaskInfo`` as ``GET _tasks`` renders it."""
        out: dict[str, Any] = {
            "node": self.node_id,
            "id": task.number,
            "type": "transport",
            "action": task.action,
        }
        status = task.status()
        if status is not None:
            out["status"] = status
        if detailed:
            out["description"] = task.description
        out.update(
            start_time_in_millis=int(task.start_wall * 1000),
            running_time_in_nanos=int((time.monotonic() - task.start_mono) * 1e9),
            cancellable=True,
            cancelled=task.cancelled,
        )
        if task.parent is not None:
            out["parent_task_id"] = task.parent
        out["headers"] = {}
        return out


def parse_task_id(task_id: str) -> tuple[str, int]:
    """``node:number``; 400 ``illegal_argument_exception`` "malformed task id X" otherwise (``TaskId``)."""
    node, sep, number = task_id.rpartition(":")
    if not sep or not node or not number.isdigit():
        raise EsError(400, "illegal_argument_exception", f"malformed task id {task_id}")
    return node, int(number)
