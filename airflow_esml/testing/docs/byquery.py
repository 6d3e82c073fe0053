"""``_reindex`` and ``_update_by_query`` as tasks: slices, scroll batches, throttling, conflicts, cancellation.

As ``AbstractAsyncBulkByScrollAction``, ``BulkByScrollTask`` and ``BulkByScrollParallelizationHelper`` in
elastic/elasticsearch (modules/reindex/, server/src/main/java/org/elasticsearch/index/reindex/): every slice
takes a point-in-time view of its share of the matching documents, writes them in batches of ``size`` through
the bulk path (ingest pipelines included), sleeps between batches to honour ``requests_per_second``, and stops
at the first batch with a failure (version conflicts only with ``conflicts=abort``). The leader of a sliced
job reports the statuses of its finished slices only, as Elasticsearch does.
"""

from __future__ import annotations

import functools
import hashlib
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from airflow_esml.testing.docs.model import Doc, WriteOp
from airflow_esml.testing.docs.tasks import Task, TaskManager
from airflow_esml.testing.protocol import EsError

ACTIONS = {"reindex": "indices:data/write/reindex", "update_by_query": "indices:data/write/update/byquery"}
DEFAULT_BATCH_SIZE = 1000


class Store(Protocol):
    """What a job needs of the document store."""

    def snapshot(self, name: str, query: Any) -> list[tuple[str, Doc]]: ...

    def execute(self, ops: list[WriteOp], *, ingest: bool = True, refresh: bool = False) -> list[dict[str, Any]]: ...


@dataclass
class JobSpec:
    """A parsed ``_reindex`` or ``_update_by_query`` request.

    :param kind: ``reindex`` or ``update_by_query``.
    :param source: the source index.
    :param dest: the destination index (the source for update-by-query).
    :param query: the source query.
    :param pipeline: the destination pipeline (``None``: the index's default).
    :param op_type: ``index`` or ``create`` (reindex ``dest.op_type``).
    :param batch_size: documents per scroll batch (``source.size`` / ``scroll_size``).
    :param max_docs: at most this many documents, ``None`` for all.
    :param slices: the number of slices (``auto`` already resolved).
    :param requests_per_second: the throttle, ``math.inf`` for none.
    :param proceed_on_conflict: ``conflicts=proceed``.
    :param refresh: refresh the destination at the end.
    """

    kind: str
    source: str
    dest: str
    query: dict[str, Any] = field(default_factory=lambda: {"match_all": {}})
    pipeline: str | None = None
    op_type: str = "index"
    batch_size: int = DEFAULT_BATCH_SIZE
    max_docs: int | None = None
    slices: int = 1
    requests_per_second: float = math.inf
    proceed_on_conflict: bool = False
    refresh: bool = False

    @property
    def description(self) -> str:
        if self.kind == "reindex":
            return f"reindex from [{self.source}] to [{self.dest}]"
        return f"update-by-query [{self.source}]"


@dataclass
class SliceState:
    """The counters of one slice (or of an unsliced job): ``BulkByScrollTask.Status``."""

    slice_id: int | None
    requests_per_second: float
    total: int = 0
    updated: int = 0
    created: int = 0
    deleted: int = 0
    batches: int = 0
    version_conflicts: int = 0
    noops: int = 0
    throttled_seconds: float = 0.0
    throttled_until: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)
    canceled: str | None = None
    started: float = field(default_factory=time.monotonic)
    took_ms: int = 0

    def status(self, *, include_created: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {} if self.slice_id is None else {"slice_id": self.slice_id}
        out["total"] = self.total
        out["updated"] = self.updated
        if include_created:
            out["created"] = self.created
        out.update(
            deleted=self.deleted,
            batches=self.batches,
            version_conflicts=self.version_conflicts,
            noops=self.noops,
            retries={"bulk": 0, "search": 0},
            throttled_millis=int(self.throttled_seconds * 1000),
            requests_per_second=_rps(self.requests_per_second),
        )
        if self.canceled is not None:
            out["canceled"] = self.canceled
        until = max(0.0, self.throttled_until - time.monotonic())
        out["throttled_until_millis"] = int(until * 1000)
        return out


def _rps(value: float) -> float:
    return -1.0 if math.isinf(value) else float(value)


def merge_statuses(slices: list[SliceState | None], canceled: str | None) -> dict[str, Any]:
    """The leader's status: sums over the finished slices, and ``slices`` (``None`` while one runs)."""
    done = [s for s in slices if s is not None]
    out: dict[str, Any] = {}
    for key in ("total", "updated", "created", "deleted", "batches", "version_conflicts", "noops"):
        out[key] = sum(getattr(s, key) for s in done)
    out["retries"] = {"bulk": 0, "search": 0}
    out["throttled_millis"] = int(sum(s.throttled_seconds for s in done) * 1000)
    out["requests_per_second"] = _rps(sum(s.requests_per_second for s in done)) if done else 0.0
    if canceled is not None:
        out["canceled"] = canceled
    out["throttled_until_millis"] = 0
    out["slices"] = [s.status() if s is not None else None for s in slices]
    return out


def in_slice(doc_id: str, slice_id: int, slices: int) -> bool:
    """Sliced scroll on ``_id``: a stable hash of the id modulo the number of slices."""
    if slices == 1:
        return True
    return int.from_bytes(hashlib.md5(doc_id.encode()).digest()[:4], "big") % slices == slice_id


def share(max_docs: int | None, slice_id: int, slices: int) -> int | None:
    """A slice's part of ``max_docs`` (the remainder goes to the first slices)."""
    if max_docs is None:
        return None
    return max_docs // slices + (1 if slice_id < max_docs % slices else 0)


class Job:
    """One running ``_reindex`` or ``_update_by_query``: its task, its slices and their threads.

    :param spec: the parsed request.
    :param store: the document store.
    :param tasks: the task manager.
    :param store_result: keep the result in ``.tasks`` (``wait_for_completion=false``).
    """

    def __init__(self, spec: JobSpec, store: Store, tasks: TaskManager, *, store_result: bool) -> None:
        self.spec, self.store, self.tasks = spec, store, tasks
        action = ACTIONS[spec.kind]
        sliced = spec.slices > 1
        self.states: list[SliceState] = [
            SliceState(i if sliced else None, spec.requests_per_second / spec.slices) for i in range(spec.slices)
        ]
        self.finished: list[SliceState | None] = [None] * spec.slices
        if sliced:
            self.task = tasks.new_task(action, spec.description, self._leader_status)
            self.slice_tasks = [
                tasks.new_task(action, spec.description, state.status, parent=self.task) for state in self.states
            ]
        else:
            self.task = tasks.new_task(action, spec.description, self.states[0].status)
            self.slice_tasks = [self.task]
        self.task.store_result = store_result
        self.started = time.monotonic()
        self._lock = threading.Lock()

    @property
    def task_id(self) -> str:
        return self.tasks.task_id(self.task)

    def start(self) -> None:
        """Run every slice on its own thread; the last one to finish completes the job."""
        for state, task in zip(self.states, self.slice_tasks, strict=True):
            self.tasks.spawn(f"esml-sim-{self.spec.kind}-{task.number}", functools.partial(self._run, state, task))

    def _leader_status(self) -> dict[str, Any]:
        return merge_statuses(self.finished, self.task.cancel_reason)

    # -- a slice ---------------------------------------------------------------------------------

    def _run(self, state: SliceState, task: Task) -> None:
        error: dict[str, Any] | None = None
        try:
            self._work(state, task)
        except EsError as err:
            error = {"type": err.type, "reason": err.reason, **err.extra}
        except Exception as exc:  # pragma: no cover - a simulator bug: reported like an ES internal error
            error = {"type": "exception", "reason": f"simulator internal error: {exc}"}
        state.took_ms = int((time.monotonic() - state.started) * 1000)
        state.throttled_until = 0.0
        state.canceled = task.cancel_reason
        if task is self.task:
            self.tasks.finish(task, None if error else self.response([state]), error)
            return
        if error is not None:
            state.failures.append({"index": self.spec.source, "shard": None, "node": None, "reason": error})
        self.tasks.finish(task, self.response([state]))
        with self._lock:
            self.finished[state.slice_id or 0] = state
            last = all(s is not None for s in self.finished)
        if last:
            self.tasks.finish(self.task, self.response(self.states))

    def _work(self, state: SliceState, task: Task) -> None:
        spec = self.spec
        docs = [
            (i, d)
            for i, d in self.store.snapshot(spec.source, spec.query)
            if in_slice(i, state.slice_id or 0, spec.slices)
        ]
        limit = share(spec.max_docs, state.slice_id or 0, spec.slices)
        docs = docs if limit is None else docs[:limit]
        state.total = len(docs)
        last_start, last_size = None, 0
        for start in range(0, len(docs), spec.batch_size):
            if task.cancelled or not self._throttle(state, task, last_start, last_size):
                return
            batch = docs[start : start + spec.batch_size]
            last_start, last_size = time.monotonic(), len(batch)
            state.batches += 1
            items = self.store.execute([self._op(doc_id, doc) for doc_id, doc in batch], refresh=spec.refresh)
            if not self._count(state, items):
                return

    def _op(self, doc_id: str, doc: Doc) -> WriteOp:
        spec = self.spec
        if spec.kind == "reindex":
            return WriteOp(spec.op_type, spec.dest, doc_id, source=doc.source, pipeline=spec.pipeline)
        return WriteOp("index", spec.dest, doc_id, source=doc.source, pipeline=spec.pipeline, cas=(doc.seq_no, 1))

    def _count(self, state: SliceState, items: list[dict[str, Any]]) -> bool:
        """Add a batch's results; ``False`` when the job must stop (a failure)."""
        failed = False
        for item in items:
            if "error" not in item:
                if item["result"] == "created":
                    state.created += 1
                elif item["result"] == "noop":
                    state.noops += 1
                else:
                    state.updated += 1
                continue
            if item["status"] == 409:
                state.version_conflicts += 1
                if self.spec.proceed_on_conflict:
                    continue
            failed = True
            state.failures.append(
                {"index": item["_index"], "id": item["_id"], "cause": item["error"], "status": item["status"]}
            )
        return not failed

    def _throttle(self, state: SliceState, task: Task, last_start: float | None, last_size: int) -> bool:
        """Sleep until the next batch may start (``requests_per_second``); ``False`` when cancelled meanwhile."""
        if last_start is None or math.isinf(state.requests_per_second):
            return True
        wake = last_start + last_size / state.requests_per_second
        state.throttled_until = wake
        while (left := wake - time.monotonic()) > 0:
            if task.cancelled:
                return False
            time.sleep(min(left, 0.02))
            state.throttled_seconds += min(left, 0.02)
        state.throttled_until = 0.0
        return True

    # -- results ---------------------------------------------------------------------------------

    def response(self, states: list[SliceState]) -> dict[str, Any]:
        """``BulkByScrollResponse`` (``took``, ``timed_out``, the status fields, ``failures``)."""
        took = int((time.monotonic() - self.started) * 1000)
        single = len(states) == 1
        status = states[0].status() if single else merge_statuses(list(states), self.task.cancel_reason)
        failures = [f for s in states for f in s.failures]
        return {"took": took, "timed_out": False, **status, "failures": failures}
