"""One shared stats poller per event loop and cluster connection, for every wait on allocations.

A triggerer runs all its triggers in one event loop. Instead of one stats request per trigger and poll
interval, every :class:`~airflow_esml.triggers.deployment.AllocationsStartedTrigger` of the loop that
uses the same connection subscribes to one :class:`DeploymentPoller`, which sends **one** stats request
per interval for the union of the awaited deployment ids and hands each waiter the status of its own
deployment. The cluster load is then one request per interval whatever the number of waiters, so the
interval can be short (:data:`DEFAULT_TRIGGER_INTERVAL`) and readiness is noticed within about one interval.

- Waiters come and go: the poller starts with the first subscriber and stops, closing its async client,
  when the last one leaves; the next subscriber starts a fresh one.
- Each waiter keeps its own deadline and ``min_allocations``; a missing deployment fails only its waiters.
- A request that still fails transiently after the hook's retries means "still waiting" (with backoff
  of the shared interval while it lasts).
- Polling only reads, so a duplicate copy of a trigger (triggerer HA) is harmless.
- A cluster that does not answer never holds a waiter past its deadline: each waiter waits for news only
  until its own deadline (and then says that the stats request is unanswered), and when the last waiter
  leaves, the request still in flight is cancelled and the client closed.

Imports no Elasticsearch client at module level: DAG files reach this module through the trigger.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Protocol

from airflow_esml.core.params import DEFAULT_TRIGGER_INTERVAL, cut
from airflow_esml.core.readiness import Result, Verdict, WaitWindow, judge

if TYPE_CHECKING:
    from airflow_esml.core.status import DeploymentStatus

#: the shortest interval a waiter can ask for.
MIN_INTERVAL = 0.05
#: the longest pause between two requests while the stats request keeps failing transiently.
MAX_BACKOFF = 30.0
#: how long past its deadline a new waiter waits for its first look (one stats request).
FIRST_LOOK_GRACE = 30.0
#: a waiter logs its progress line when it changes, and otherwise at most this often (seconds).
LOG_EVERY = 30.0

log = logging.getLogger(__name__)


class StatsSource(Protocol):
    """What the poller needs from :class:`~airflow_esml.hooks.ml.ElasticsearchMLHook`."""

    async def aget_deployments(self, deployment_ids: Sequence[str]) -> dict[str, DeploymentStatus | Exception]: ...

    async def aclose(self) -> None: ...


HookFactory = Callable[[str], StatsSource]


def default_hook_factory(conn_id: str) -> StatsSource:
    """A hook that tries each stats request twice: the next poll is only an interval away."""
    from airflow_esml.hooks.ml import ElasticsearchMLHook
    from airflow_esml.hooks.retry import RetryPolicy

    return ElasticsearchMLHook(conn_id, retry=RetryPolicy(attempts=2, initial_wait=0.2, max_wait=1.0))


class Subscription:
    """One waiter's view of the poller: the latest result for its deployment, and whether it is new.

    :param deployment_id: the deployment waited on.
    :param interval: the longest time the waiter wants between two looks.
    """

    def __init__(self, deployment_id: str, interval: float, unanswered: Callable[[], float] | None = None) -> None:
        self.deployment_id = deployment_id
        self.interval = max(MIN_INTERVAL, float(interval))
        self._result: Result | None = None
        self._fresh = asyncio.Event()
        self._unanswered = unanswered

    def unanswered_for(self) -> float:
        """Seconds the poller's stats request in flight has gone unanswered (0 when none is in flight)."""
        return self._unanswered() if self._unanswered else 0.0

    def deliver(self, result: Result) -> None:
        self._result = result
        self._fresh.set()

    async def next(self, timeout: float) -> Result | None:
        """The next result the poller delivers, or None when ``timeout`` seconds pass first."""
        if not self._fresh.is_set():
            try:
                await asyncio.wait_for(self._fresh.wait(), timeout=max(0.0, timeout))
            except asyncio.TimeoutError:
                return None
        self._fresh.clear()
        return self._result


class DeploymentPoller:
    """Sends one stats request per interval for every deployment its subscribers wait on.

    :param conn_id: the Airflow connection of the cluster.
    :param hook_factory: builds the hook (called once, when the poller starts).
    """

    def __init__(self, conn_id: str, hook_factory: HookFactory) -> None:
        self.conn_id = conn_id
        self._hook_factory = hook_factory
        self._subs: set[Subscription] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._request: asyncio.Future[Any] | None = None  # the stats request in flight
        self._request_sent = 0.0
        self.requests = 0  # stats requests sent, for tests and benchmarks

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def interval(self) -> float:
        """The shortest interval any subscriber asked for."""
        return min((s.interval for s in self._subs), default=DEFAULT_TRIGGER_INTERVAL)

    def deployment_ids(self) -> list[str]:
        return sorted({s.deployment_id for s in self._subs})

    def subscribe(self, deployment_id: str, interval: float = DEFAULT_TRIGGER_INTERVAL) -> Subscription:
        if self._closed:
            raise RuntimeError("the poller has stopped; get a new one from poller_for()")
        sub = Subscription(deployment_id, interval, self.unanswered_for)
        self._subs.add(sub)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"esml-poller-{self.conn_id}")
            _TASKS.add(self._task)  # the loop keeps only weak references to tasks
            self._task.add_done_callback(self._on_done)
        self._wake.set()  # a shorter interval applies at once
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)
        if not self._subs:
            self._close()
            if self._request is not None:  # nobody waits for it: a hung request must not keep the client open
                self._request.cancel()
        self._wake.set()

    def unanswered_for(self) -> float:
        """Seconds the stats request in flight has gone unanswered (0 when none is in flight)."""
        return time.monotonic() - self._request_sent if self._request is not None else 0.0

    async def wait_stopped(self) -> None:
        """Wait until the polling task has ended (after the last subscriber left)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    def _close(self) -> None:
        """Stop taking subscribers; synchronous, so that no subscriber can join a stopping poller."""
        if not self._closed:
            self._closed = True
            _forget(self)

    async def _run(self) -> None:
        hook = self._hook_factory(self.conn_id)
        failures = 0
        try:
            while not self._closed:
                started = time.monotonic()
                failures = 0 if await self._poll_once(hook) else failures + 1
                await self._pause(started, failures)
        finally:
            self._close()
            await hook.aclose()

    async def _pause(self, started: float, failures: int) -> None:
        """Sleep until the next poll is due; wakes early to stop, or when a subscriber shortens the interval."""
        while not self._closed:
            pause = self.interval if not failures else min(MAX_BACKOFF, self.interval * 2**failures)
            remaining = started + pause - time.monotonic()
            if remaining <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=remaining)
            except asyncio.TimeoutError:
                return

    async def _poll_once(self, hook: StatsSource) -> bool:
        """One stats request for every awaited deployment; False when it failed for everyone."""
        ids = self.deployment_ids()
        if not ids:
            return True
        self.requests += 1
        ok = True
        request = asyncio.ensure_future(hook.aget_deployments(ids))
        self._request, self._request_sent = request, time.monotonic()
        try:
            await asyncio.wait({request})  # a cancelled request ends the wait without raising here
        finally:
            self._request = None
            request.cancel()  # when this task itself is cancelled
        if request.cancelled():  # the last waiter left while it was in flight
            return True
        try:
            results: dict[str, Any] = dict(request.result())
        except Exception as exc:  # each waiter decides what the error means for it
            ok = False
            results = dict.fromkeys(ids, exc)
        for sub in list(self._subs):
            result = results.get(sub.deployment_id)
            if result is not None:
                sub.deliver(result)
        return ok

    def _on_done(self, task: asyncio.Task[None]) -> None:
        """If the task ended while waiters remain (a bug, or the loop shutting down), tell them."""
        _TASKS.discard(task)
        self._close()
        error: BaseException = RuntimeError("the stats poller stopped unexpectedly")
        if not task.cancelled() and task.exception() is not None:
            error = task.exception() or error
        for sub in list(self._subs):
            sub.deliver(error)


# (event loop) -> conn id -> poller; weak, so that a closed loop takes its pollers with it
_POLLERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, DeploymentPoller]] = (
    weakref.WeakKeyDictionary()
)


# polling tasks that have not ended yet, stopping ones included
_TASKS: set[asyncio.Task[None]] = set()


def poller_for(conn_id: str, hook_factory: HookFactory | None = None) -> DeploymentPoller:
    """The running poller of this event loop for ``conn_id``, or a new one.

    :param conn_id: the Airflow connection of the cluster.
    :param hook_factory: how a new poller builds its hook (tests and benchmarks inject one).
    """
    pollers = _POLLERS.setdefault(asyncio.get_running_loop(), {})
    poller = pollers.get(conn_id)
    if poller is None or poller.closed:
        poller = DeploymentPoller(conn_id, hook_factory or default_hook_factory)
        pollers[conn_id] = poller
    return poller


def active_pollers() -> list[DeploymentPoller]:
    """The pollers of the running event loop (for tests and benchmarks)."""
    return list(_POLLERS.get(asyncio.get_running_loop(), {}).values())


async def wait_pollers_stopped() -> None:
    """Wait until every polling task of the running loop that has no subscribers left has ended."""
    loop = asyncio.get_running_loop()
    stopping = [t for t in _TASKS if t.get_loop() is loop and not any(p._task is t for p in active_pollers())]
    await asyncio.gather(*stopping, return_exceptions=True)


def _forget(poller: DeploymentPoller) -> None:
    for pollers in list(_POLLERS.values()):
        if pollers.get(poller.conn_id) is poller:
            del pollers[poller.conn_id]


@asynccontextmanager
async def subscription(
    conn_id: str,
    deployment_id: str,
    interval: float = DEFAULT_TRIGGER_INTERVAL,
    hook_factory: HookFactory | None = None,
) -> AsyncIterator[Subscription]:
    """Subscribe to the shared poller for the duration of the ``async with`` block."""
    poller = poller_for(conn_id, hook_factory)
    sub = poller.subscribe(deployment_id, interval)
    try:
        yield sub
    finally:
        poller.unsubscribe(sub)


async def wait_until_started(
    *,
    conn_id: str,
    deployment_id: str,
    min_allocations: int | None,
    window: WaitWindow,
    interval: float = DEFAULT_TRIGGER_INTERVAL,
    logger: logging.Logger | Any = log,
    hook_factory: HookFactory | None = None,
) -> Verdict:
    """Wait through the shared poller until the allocations are started, the deployment fails or the window ends.

    :param conn_id: the Airflow connection of the cluster.
    :param deployment_id: the deployment to watch.
    :param min_allocations: started allocations needed; None means the deployment's whole target.
    :param window: the wait's start and absolute deadline.
    :param interval: the longest time between two looks at the deployment.
    :param logger: where the progress lines go (when they change, else every :data:`LOG_EVERY` seconds).
    :param hook_factory: how a new poller builds its hook.
    """
    verdict = Verdict("waiting", f"{cut(deployment_id)}: no status yet")
    logged_key, logged_at = "", 0.0
    async with subscription(conn_id, deployment_id, interval, hook_factory) as sub:
        # the first look happens even when the deadline has passed (e.g. after a triggerer restart); in an
        # open window it waits to the deadline, or one interval if that is later
        first_wait = sub.interval + FIRST_LOOK_GRACE if window.expired() else max(window.remaining(), sub.interval)
        result = await sub.next(first_wait)
        while True:
            if result is None:
                return window.timed_out(_unanswered(deployment_id, sub, verdict))
            verdict = judge(deployment_id, result, min_allocations, window, verdict)
            key = verdict.outcome + (verdict.message if verdict.status is None else _status_key(verdict))
            now = time.monotonic()
            if verdict.done or key != logged_key or now - logged_at >= LOG_EVERY:
                logger.info("%s", verdict.message)
                logged_key, logged_at = key, now
            if verdict.done:
                return verdict
            if window.expired():
                return window.timed_out(verdict)
            result = await sub.next(window.remaining())


def _unanswered(deployment_id: str, sub: Subscription, last: Verdict) -> Verdict:
    """``last``, or when the stats request has gone unanswered for an interval or more, a verdict that says so."""
    silent = sub.unanswered_for()
    if silent < sub.interval:
        return last
    return Verdict(
        "waiting",
        f"{cut(deployment_id)}: the cluster did not answer the stats request within {silent:.1f}s"
        + (f" (before that: {last.message})" if last.status is not None else ""),
        last.status,
    )


def _status_key(verdict: Verdict) -> str:
    status = verdict.status
    assert status is not None
    return f"{status.state}:{status.started_allocations}/{status.target_allocations}:{status.describe_nodes()}"
