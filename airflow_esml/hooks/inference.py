"""Batch inference that keeps every started allocation busy.

A loop that sends one ``_infer`` request at a time keeps one allocation busy however many were started.
:func:`abatch_infer` reads the deployment's started allocations and threads per allocation, splits the
documents into chunks, and keeps enough requests in flight for ``allocations x threads`` workers (with a
second request queued behind each, so that no worker waits for a round trip). A ``429`` (the inference
queue is full) is not a failure: the chunk is retried after a jittered exponential backoff and the
number of requests in flight is halved, then grows back by one per window of successes. Results come
back in the order of the documents. :func:`batch_infer` is the synchronous entry point for tasks.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import elasticsearch

from airflow_esml.core.batch import (  # noqa: F401 (the three constants: re-exported for their old path)
    CONNECTIONS_PER_NODE,
    MAX_CHUNK,
    REQUESTS_PER_WORKER,
    BatchPlan,
    BatchResult,
    normalize_docs,
    plan_batch,
)
from airflow_esml.core.endpoint_results import check_query, endpoint_inputs, endpoint_results
from airflow_esml.exceptions import TransientRequestError
from airflow_esml.hooks.retry import is_transient, translate

if TYPE_CHECKING:
    from airflow_esml.core.target import Target
    from airflow_esml.hooks.ml import ElasticsearchMLHook

log = logging.getLogger(__name__)

T = TypeVar("T")

#: attempts for one chunk on 502/503/504 and connection errors (429 has its own, time-bounded, backoff).
TRANSIENT_ATTEMPTS = 4
#: seconds between two progress lines of a running batch (the last line, with the totals, comes at its end).
PROGRESS_INTERVAL = 5.0

#: sends one chunk of documents and returns one result per document (Elasticsearch's errors are raised)
Infer = Callable[[list[dict[str, Any]]], Awaitable[list[Any]]]


class InFlightWindow:
    """How many requests may be in flight: halved on a 429 (at most once per ``cooldown``), then one more
    per ``limit`` successes, up to the planned maximum."""

    def __init__(self, maximum: int, cooldown: float = 0.2) -> None:
        self.maximum = maximum
        self.limit = maximum
        self.active = 0
        self._successes = 0
        self._cut_at = -math.inf
        self._cooldown = cooldown
        self._changed = asyncio.Condition()

    async def acquire(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.active < self.limit)
            self.active += 1

    async def release(self, *, rejected: bool) -> None:
        async with self._changed:
            self.active -= 1
            now = time.monotonic()
            if rejected:
                if now - self._cut_at >= self._cooldown:
                    self.limit, self._cut_at, self._successes = max(1, self.limit // 2), now, 0
            else:
                self._successes += 1
                if self._successes >= self.limit and self.limit < self.maximum:
                    self.limit, self._successes = self.limit + 1, 0
            self._changed.notify_all()


@dataclass
class _Counters:
    requests: int = 0
    rejected: int = 0


class Progress:
    """Logs how far a batch is: documents done of the total, docs/s and the time left, at most every ``interval``.

    :param deployment_id: the deployment, for the log lines.
    :param total: the documents in the batch.
    :param interval: the shortest time in seconds between two lines.
    """

    def __init__(self, deployment_id: str, total: int, interval: float = PROGRESS_INTERVAL) -> None:
        self.deployment_id = deployment_id
        self.total = total
        self.interval = interval
        self.done = 0
        self.started = self.reported = time.monotonic()

    def add(self, docs: int) -> None:
        """Count ``docs`` more documents done; log a line when ``interval`` has passed since the last one."""
        self.done += docs
        now = time.monotonic()
        if now - self.reported >= self.interval and self.done < self.total:
            self.reported = now
            log.info("%s: %s", self.deployment_id, self.line(now - self.started))

    def line(self, elapsed: float) -> str:
        """``1200/2000 documents (60%), 412.0 docs/s, ETA 2s`` after ``elapsed`` seconds."""
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = f"ETA {math.ceil((self.total - self.done) / rate)}s" if rate > 0 else "ETA unknown"
        share = 100 * self.done // self.total if self.total else 100
        return f"{self.done}/{self.total} documents ({share}%), {rate:.1f} docs/s, {left}"


def ml_infer(client: Any, deployment_id: str, timeout: str) -> Infer:
    """Chunks sent to ``POST _ml/trained_models/<deployment_id>/_infer``."""

    async def infer(docs: list[dict[str, Any]]) -> list[Any]:
        response = await client.ml.infer_trained_model(model_id=deployment_id, docs=docs, timeout=timeout)
        return list(response.body["inference_results"])

    return infer


def endpoint_infer(
    client: Any, inference_id: str, task_type: str, field_name: str, timeout: str, query: str | None = None
) -> Infer:
    """Chunks sent to ``POST _inference/<task_type>/<inference_id>`` as input texts (the ``field_name`` of each
    document); the answer per task type is read by :func:`~airflow_esml.core.endpoint_results.endpoint_results`."""
    path = f"/_inference/{quote(task_type, safe='')}/{quote(inference_id, safe='')}"
    headers = {"accept": "application/json", "content-type": "application/json"}

    async def infer(docs: list[dict[str, Any]]) -> list[Any]:
        texts = endpoint_inputs(docs, field_name)
        body: dict[str, Any] = {"input": texts} if query is None else {"query": query, "input": texts}
        response = await client.perform_request("POST", path, params={"timeout": timeout}, headers=headers, body=body)
        return endpoint_results(task_type, response.body, len(texts))

    return infer


class _Batch:
    """One running batch: chunks, a window of requests in flight, and the results slot per document."""

    def __init__(
        self,
        infer: Infer,
        deployment_id: str,
        docs: list[dict[str, Any]],
        plan: BatchPlan,
        *,
        max_queue_wait: float,
        progress_interval: float = PROGRESS_INTERVAL,
        what: str | None = None,
    ) -> None:
        self.infer = infer
        self.what = what or f"inference on deployment {deployment_id!r}"
        self.deployment_id = deployment_id
        self.docs = docs
        self.plan = plan
        self.max_queue_wait = max_queue_wait
        self.results: list[Any] = [None] * len(docs)
        self.window = InFlightWindow(plan.in_flight)
        self.counters = _Counters()
        self.progress = Progress(deployment_id, len(docs), progress_interval)
        self._next = 0
        self._rng = random.Random()

    async def run(self) -> None:
        workers = [asyncio.ensure_future(self._worker()) for _ in range(min(self.plan.in_flight, len(self.docs)))]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    async def _worker(self) -> None:
        while self._next < len(self.docs):
            start = self._next
            self._next = min(len(self.docs), start + self.plan.chunk_size)
            answers = await self._send(start, self._next)
            self.results[start : start + len(answers)] = answers
            self.progress.add(len(answers))

    async def _send(self, start: int, end: int) -> list[Any]:
        """Send one chunk until it is answered; 429 backs off (up to ``max_queue_wait``), other errors raise."""
        what = self.what
        first_rejection: float | None = None
        attempt = transient = 0
        while True:
            await self.window.acquire()
            self.counters.requests += 1
            try:
                results = await self.infer(self.docs[start:end])
            except (elasticsearch.ApiError, elasticsearch.TransportError) as exc:
                rejected = isinstance(exc, elasticsearch.ApiError) and exc.meta.status == 429
                await self.window.release(rejected=rejected)
                now = time.monotonic()
                if rejected:
                    self.counters.rejected += 1
                    first_rejection = now if first_rejection is None else first_rejection
                    if now - first_rejection > self.max_queue_wait:
                        raise TransientRequestError(
                            f"{what}: the inference queue stayed full for {self.max_queue_wait:.0f}s"
                        ) from exc
                elif is_transient(exc) and transient < TRANSIENT_ATTEMPTS - 1:
                    transient += 1
                else:
                    raise translate(what, exc) from exc
                attempt += 1
                await asyncio.sleep(self._backoff(attempt))
                continue
            await self.window.release(rejected=False)
            if len(results) != end - start:
                raise TransientRequestError(f"{what}: {len(results)} results for {end - start} documents")
            return results

    def _backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff: 50 ms doubling per attempt, at most 2 s."""
        return self._rng.uniform(0.5, 1.0) * min(2.0, 0.05 * 2 ** (attempt - 1))


async def abatch_infer(
    hook: ElasticsearchMLHook,
    deployment_id: str,
    docs: Sequence[Any],
    *,
    field_name: str = "text_field",
    chunk_size: int | None = None,
    in_flight: int | None = None,
    timeout: str = "60s",
    max_queue_wait: float = 600.0,
    progress_interval: float = PROGRESS_INTERVAL,
    target: Target | None = None,
    query: str | None = None,
) -> BatchResult:
    """Infer ``docs`` on the deployment with as many requests in flight as its started capacity takes.

    Logs a progress line at most every ``progress_interval`` seconds and one with the totals at the end; the
    client's own line per request is kept out of the log (the hook's clients are built quiet).

    :param hook: the hook whose async client is used (not closed here).
    :param deployment_id: the deployment (or inference endpoint) to infer with.
    :param docs: the documents: dicts as ``_infer`` takes them, or strings put into ``field_name``.
    :param field_name: the model's input field, for documents given as strings.
    :param chunk_size: documents per request (default: see :func:`~airflow_esml.core.batch.plan_batch`).
    :param in_flight: requests in flight (default: two per started allocation x thread).
    :param timeout: Elasticsearch's ``timeout`` of each request.
    :param max_queue_wait: the longest time in seconds one chunk keeps backing off on 429 before failing.
    :param progress_interval: the shortest time in seconds between two progress lines.
    :param target: what ``deployment_id`` names (:meth:`~airflow_esml.hooks.ml.ElasticsearchMLHook.target`): an
        inference endpoint is sent ``POST _inference/<task_type>/<id>`` with the documents' ``field_name`` texts,
        and its deployment's stats size the batch. None: ``deployment_id`` is a deployment (``_infer``).
    :param query: the query of a ``rerank`` endpoint (each document gets its relevance to it).
    """
    batch_docs = normalize_docs(docs, field_name)
    client = await hook.aclient()
    if target is not None and target.is_endpoint:
        assert target.endpoint_id is not None and target.endpoint_task_type is not None
        task_type = target.endpoint_task_type
        endpoint_inputs(batch_docs, field_name)  # every document has its text, before any request
        infer = endpoint_infer(
            client, target.endpoint_id, task_type, field_name, timeout, check_query(task_type, query)
        )
        what = f"inference on endpoint {target.endpoint_id!r}"
    else:
        infer, what = ml_infer(client, deployment_id, timeout), f"inference on deployment {deployment_id!r}"
    status = await hook.aget_deployment(target.deployment_id if target else deployment_id)
    plan = plan_batch(status, len(batch_docs), chunk_size=chunk_size, in_flight=in_flight)
    if status.started_allocations < 1:
        log.warning("%s: no allocation is started; requests will queue until one is", deployment_id)
    batch = _Batch(
        infer,
        deployment_id,
        batch_docs,
        plan,
        max_queue_wait=max_queue_wait,
        progress_interval=progress_interval,
        what=what,
    )
    started = time.monotonic()
    await batch.run()
    result = BatchResult(
        batch.results, time.monotonic() - started, batch.counters.requests, batch.counters.rejected, plan
    )
    log.info("%s: %s", deployment_id, result.describe())
    return result


def batch_infer(hook: ElasticsearchMLHook, deployment_id: str, docs: Sequence[Any], **options: Any) -> BatchResult:
    """Synchronous :func:`abatch_infer`, for tasks: finds what ``deployment_id`` names (unless ``target`` is given),
    runs an event loop and closes the async client after.

    :param hook: the hook to use.
    :param deployment_id: the deployment (or inference endpoint) to infer with.
    :param docs: the documents.
    :param options: keyword arguments of :func:`abatch_infer`.
    """
    options.setdefault("target", hook.target(deployment_id))

    async def main() -> BatchResult:
        try:
            return await abatch_infer(hook, deployment_id, docs, **options)
        finally:
            await hook.aclose()

    return run_sync(main())


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion, in a helper thread when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="esml-batch-infer")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]
