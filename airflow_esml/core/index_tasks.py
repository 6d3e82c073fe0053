"""Batch inference inside Elasticsearch, as values: how to slice a ``_reindex`` / ``_update_by_query``, and
what ``GET _tasks/<id>`` says about it. Pure Python.

**Sizing.** A pipeline's ``inference`` processor sends every document of a bulk batch to the deployment at
once, so a task with ``slices`` slices of ``size`` documents has up to ``slices x size`` inference requests in
flight. To keep every allocation busy, that must be well above the deployment's parallelism (started
allocations x threads per allocation); to avoid ``429 inference process queue is full`` (which fails the
document, and a bulk failure aborts the task), it must stay within the queue (``queue_capacity``, counted
once, the safe side when the deployment is on several nodes). :func:`plan_batches` takes one slice per
allocation thread (at most :data:`MAX_AUTO_SLICES`) and the largest batch that keeps the whole task inside
the queue, at most :data:`MAX_BATCH_SIZE` (Elasticsearch's default scroll size).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from airflow_esml.core.accounting import duration
from airflow_esml.core.status import DeploymentStatus

#: the most slices chosen automatically (each slice holds a scroll context open)
MAX_AUTO_SLICES = 32
#: the largest batch chosen automatically: Elasticsearch's default scroll size
MAX_BATCH_SIZE = 1000
#: the queue assumed when the stats do not say (the 8.4-8.10 default; newer clusters default to 10,000)
FALLBACK_QUEUE_CAPACITY = 1024
#: how many per-document failures a message and the XCom result quote
SHOWN_FAILURES = 5


@dataclass(frozen=True)
class BatchPlan:
    """``slices`` and documents per batch (``size``) of an in-cluster batch, and why."""

    slices: int
    size: int
    parallelism: int
    queue_capacity: int
    notes: tuple[str, ...] = ()

    @property
    def in_flight(self) -> int:
        return self.slices * self.size

    def describe(self) -> str:
        text = (
            f"{self.slices} slice(s) x {self.size} documents per batch = up to {self.in_flight} inferences in "
            f"flight, for {self.parallelism} allocation thread(s) and a queue of {self.queue_capacity}"
        )
        return "; ".join((text, *self.notes))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["notes"] = list(self.notes)
        return data


def plan_batches(status: DeploymentStatus, *, slices: int | None = None, size: int | None = None) -> BatchPlan:
    """Slices and batch size for ``status``'s deployment; ``slices`` / ``size`` override the choice.

    An override that can overfill the queue is kept and says so in the plan's notes.
    """
    threads = max(1, status.threads_per_allocation)
    parallelism = max(1, status.started_allocations) * threads
    queue = int(status.queue_capacity or FALLBACK_QUEUE_CAPACITY)
    notes: list[str] = []
    chosen_slices = slices if slices is not None else max(1, min(parallelism, MAX_AUTO_SLICES, queue))
    chosen_size = size if size is not None else max(1, min(MAX_BATCH_SIZE, queue // chosen_slices))
    if chosen_slices * chosen_size > queue:
        notes.append(
            f"{chosen_slices * chosen_size} in flight can overfill the queue of {queue}: expect 429s, which fail "
            "documents"
        )
    if chosen_slices * chosen_size < 2 * parallelism:
        notes.append(f"fewer than 2 inferences in flight per allocation thread ({parallelism}): some will idle")
    return BatchPlan(chosen_slices, chosen_size, parallelism, queue, tuple(notes))


@dataclass(frozen=True)
class TaskProgress:
    """What ``GET _tasks/<id>`` says about a ``_reindex`` / ``_update_by_query`` task.

    :param total: documents the task will go through (0 until its first batch).
    :param failures: per-document (or search) failures from the finished task's ``response``.
    :param error: the task's own error (it failed as a whole), as ``type: reason``.
    """

    task_id: str
    completed: bool
    total: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    noops: int = 0
    version_conflicts: int = 0
    batches: int = 0
    running_seconds: float = 0.0
    cancelled: str | None = None
    error: str | None = None
    failures: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    failure_count: int = 0

    @property
    def done(self) -> int:
        """Documents gone through: created, updated, deleted, no-ops and version conflicts."""
        return self.created + self.updated + self.deleted + self.noops + self.version_conflicts

    @property
    def rate(self) -> float | None:
        """Documents per second since the task started."""
        return self.done / self.running_seconds if self.running_seconds > 0 else None

    def describe(self) -> str:
        """``1200 of 10000 documents (12%), 240 docs/s, ETA 37s`` (or ``done`` when completed)."""
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        text = f"{self.done} of {self.total or '?'} documents{share}"
        rate = self.rate
        if rate:
            text += f", {rate:.0f} docs/s"
            if not self.completed and self.total > self.done:
                text += f", ETA {duration((self.total - self.done) / rate)}"
        if self.completed:
            text += f" in {duration(self.running_seconds)}"
            if self.failure_count:
                text += f", {self.failure_count} failed"
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (XCom, trigger events); :meth:`from_dict` reads it back."""
        data = asdict(self)
        data["failures"] = list(self.failures)
        data["done"] = self.done
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskProgress:
        values = {k: v for k, v in data.items() if k != "done"}
        values["failures"] = tuple(values.get("failures") or ())
        return cls(**values)


def parse_task(task_id: str, body: Mapping[str, Any]) -> TaskProgress:
    """A :class:`TaskProgress` from the answer of ``GET _tasks/<task_id>``.

    While running, the counts are in ``task.status``; once completed, in ``response`` (which also has the
    ``failures`` and, for a cancelled task, ``canceled``). A task that failed as a whole has ``error``.
    """
    task = body.get("task") or {}
    completed = bool(body.get("completed"))
    counts: Mapping[str, Any] = body.get("response") or task.get("status") or {}
    failures: Sequence[Mapping[str, Any]] = counts.get("failures") or ()
    error = body.get("error")
    cancelled = counts.get("canceled") or ("cancelled" if task.get("cancelled") and completed else None)
    return TaskProgress(
        task_id=task_id,
        completed=completed,
        total=int(counts.get("total") or 0),
        created=int(counts.get("created") or 0),
        updated=int(counts.get("updated") or 0),
        deleted=int(counts.get("deleted") or 0),
        noops=int(counts.get("noops") or 0),
        version_conflicts=int(counts.get("version_conflicts") or 0),
        batches=int(counts.get("batches") or 0),
        running_seconds=int(task.get("running_time_in_nanos") or 0) / 1e9,
        cancelled=str(cancelled) if cancelled else None,
        error=_error_text(error) if error else None,
        failures=tuple(_failure(f) for f in failures[:SHOWN_FAILURES]),
        failure_count=len(failures),
    )


def _error_text(error: Any) -> str:
    if isinstance(error, Mapping):
        cause = (error.get("caused_by") or {}).get("reason")
        text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        return f"{text} (caused by: {cause})" if cause else text
    return str(error)


def _failure(failure: Mapping[str, Any]) -> dict[str, Any]:
    """One failure, as the result quotes it: the document, the status and Elasticsearch's reason."""
    cause = failure.get("cause") or failure.get("reason") or {}
    reason = _error_text(cause) if isinstance(cause, Mapping) else str(cause)
    return {"index": failure.get("index"), "id": failure.get("id"), "status": failure.get("status"), "reason": reason}


def judge_task(progress: TaskProgress, on_document_failure: str) -> str | None:
    """Why a finished task fails the Airflow task (None: it succeeds).

    A task error or a cancellation always fails; per-document failures fail with ``on_document_failure="fail"``
    (Elasticsearch aborts a ``_reindex`` / ``_update_by_query`` at the first bulk failure, so the documents
    after it were not processed either).
    """
    if progress.error:
        return f"task {progress.task_id} failed: {progress.error}"
    if progress.cancelled:
        return f"task {progress.task_id} was cancelled ({progress.cancelled}) after {progress.describe()}"
    if progress.failure_count and on_document_failure == "fail":
        first = "; ".join(f"{f['index']}/{f['id']}: {f['status']} {f['reason']}" for f in progress.failures)
        return (
            f"task {progress.task_id}: {progress.failure_count} document failure(s), the task stopped at "
            f"{progress.done} of {progress.total}: {first}"
        )
    return None
