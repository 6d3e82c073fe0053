"""How a batch of documents is sent, and what came back: pure, no I/O.

:func:`plan_batch` sizes a batch for a deployment's started capacity (requests in flight, documents per
request); :class:`BatchResult` is its outcome; :func:`normalize_docs` puts the documents in the shape ``_infer``
takes. The async engine that sends the batch is :mod:`airflow_esml.hooks.inference`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_esml.exceptions import InvalidParameterError

if TYPE_CHECKING:
    from airflow_esml.core.status import DeploymentStatus

#: the most documents in one ``_infer`` request by default.
MAX_CHUNK = 16
#: requests in flight per worker (allocation x thread): one running, one queued behind it.
REQUESTS_PER_WORKER = 2
#: connections per node of the client's pool (elastic-transport's default): requests beyond it queue in the client.
CONNECTIONS_PER_NODE = 10


@dataclass(frozen=True)
class BatchPlan:
    """How a batch is sent.

    :param allocations: started allocations when the batch began.
    :param threads_per_allocation: the deployment's threads per allocation.
    :param in_flight: the most requests in flight at once.
    :param chunk_size: documents per request.
    """

    allocations: int
    threads_per_allocation: int
    in_flight: int
    chunk_size: int

    @property
    def workers(self) -> int:
        return max(1, self.allocations) * max(1, self.threads_per_allocation)


def plan_batch(
    status: DeploymentStatus, docs: int, *, chunk_size: int | None = None, in_flight: int | None = None
) -> BatchPlan:
    """Size the batch for the deployment's started capacity.

    Without overrides: two requests in flight per worker, and chunks small enough that every request slot
    gets at least four requests (at most :data:`MAX_CHUNK` documents), with the documents in flight
    kept within one node's ``queue_capacity`` so that a queue is not flooded on purpose.

    :param status: the deployment's status (started allocations, threads per allocation, queue capacity).
    :param docs: the number of documents in the batch.
    :param chunk_size: documents per request, instead of the computed size.
    :param in_flight: requests in flight, instead of the computed number.
    """
    plan = BatchPlan(status.started_allocations, status.threads_per_allocation, 1, 1)
    slots = in_flight or REQUESTS_PER_WORKER * plan.workers
    # the documents of a request are spread over the workers: keep two per worker in flight, even when the
    # client's connection pool caps the requests actually in flight
    floor = math.ceil(REQUESTS_PER_WORKER * plan.workers / min(slots, CONNECTIONS_PER_NODE))
    size = chunk_size or max(1, min(max(MAX_CHUNK, floor), max(floor, math.ceil(docs / (slots * 4)))))
    if in_flight is None and status.queue_capacity:
        slots = max(1, min(slots, (status.queue_capacity + plan.workers) // size))
    return BatchPlan(plan.allocations, plan.threads_per_allocation, max(1, slots), max(1, size))


@dataclass(frozen=True)
class BatchResult:
    """The outcome of a batch: the results in document order and how fast they came.

    :param results: one inference result per document, in order.
    :param seconds: wall-clock time from the first request to the last answer.
    :param requests: ``_infer`` requests sent, retries included.
    :param rejected: ``429`` answers that were backed off and retried.
    :param plan: how the batch was sent.
    """

    results: list[Any]
    seconds: float
    requests: int
    rejected: int
    plan: BatchPlan

    @property
    def docs(self) -> int:
        return len(self.results)

    @property
    def docs_per_second(self) -> float:
        return self.docs / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """A small JSON-safe summary (no results), for XCom and logs."""
        return {
            "docs": self.docs,
            "seconds": round(self.seconds, 3),
            "docs_per_second": round(self.docs_per_second, 1),
            "allocations": self.plan.allocations,
            "threads_per_allocation": self.plan.threads_per_allocation,
            "in_flight": self.plan.in_flight,
            "chunk_size": self.plan.chunk_size,
            "requests": self.requests,
            "rejected": self.rejected,
        }

    def describe(self) -> str:
        return (
            f"{self.docs} docs in {self.seconds:.2f}s ({self.docs_per_second:.1f} docs/s) on "
            f"{self.plan.allocations} allocation(s) x {self.plan.threads_per_allocation} thread(s), "
            f"{self.plan.in_flight} requests in flight of {self.plan.chunk_size} docs; "
            f"{self.rejected} queue-full answer(s) retried"
        )


def normalize_docs(docs: Sequence[Any], field_name: str) -> list[dict[str, Any]]:
    """Documents as ``_infer`` takes them: dicts as given, strings as ``{field_name: text}``."""
    if isinstance(docs, (str, bytes, Mapping)):
        raise InvalidParameterError(f"docs must be a list of documents, got a single {type(docs).__name__}")
    out: list[dict[str, Any]] = []
    for i, doc in enumerate(docs):
        if isinstance(doc, Mapping):
            out.append(dict(doc))
        elif isinstance(doc, str):
            out.append({field_name: doc})
        else:
            raise InvalidParameterError(f"document {i} must be a dict or a string, got {type(doc).__name__}")
    return out
