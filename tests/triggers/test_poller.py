"""The shared stats poller: one request per interval for every waiter, and each waiter's own outcome."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest

from airflow_esml.core.readiness import WaitWindow
from airflow_esml.core.status import DeploymentStatus
from airflow_esml.exceptions import DeploymentNotFoundError, TransientRequestError
from airflow_esml.testing import Simulator
from airflow_esml.triggers import poller
from airflow_esml.triggers.deployment import AllocationsStartedTrigger
from airflow_esml.triggers.poller import active_pollers, poller_for, wait_pollers_stopped, wait_until_started

INTERVAL = 0.05


def status(deployment_id: str, started: int, target: int = 2) -> DeploymentStatus:
    return DeploymentStatus(
        deployment_id=deployment_id,
        model_id="my-e5",
        state="started",
        target_allocations=target,
        started_allocations=started,
        allocation_state="fully_allocated" if started >= target else "started",
    )


class FakeStats:
    """A scripted stats source that records every request."""

    def __init__(self) -> None:
        self.started: dict[str, int] = {}
        self.missing: set[str] = set()
        self.transient = False
        self.requests: list[list[str]] = []
        self.closed = 0

    async def aget_deployments(self, deployment_ids: Sequence[str]) -> dict[str, DeploymentStatus | Exception]:
        self.requests.append(sorted(deployment_ids))
        await asyncio.sleep(0)
        if self.transient:
            raise TransientRequestError("stats of deployments: still failing after retries (503)")
        return {
            d: DeploymentNotFoundError(f"{d}: no such deployment") if d in self.missing else status(d, self.started[d])
            for d in deployment_ids
        }

    async def aclose(self) -> None:
        self.closed += 1


@pytest.fixture
def fake() -> FakeStats:
    return FakeStats()


async def wait(fake: FakeStats, deployment_id: str, timeout: float = 5.0, conn_id: str = "es", needed: int = 2):
    return await wait_until_started(
        conn_id=conn_id,
        deployment_id=deployment_id,
        min_allocations=needed,
        window=WaitWindow.starting_now(timeout),
        interval=INTERVAL,
        hook_factory=lambda _conn: fake,
    )


async def settle() -> None:
    await wait_pollers_stopped()


async def test_many_waiters_share_one_request_per_interval(fake: FakeStats) -> None:
    fake.started = {f"d{i}": 0 for i in range(10)}
    waiters = [asyncio.create_task(wait(fake, f"d{i % 10}")) for i in range(200)]
    await asyncio.sleep(INTERVAL * 6)
    polls_while_waiting = len(fake.requests)
    fake.started = dict.fromkeys(fake.started, 2)
    verdicts = await asyncio.gather(*waiters)
    await settle()
    assert [v.outcome for v in verdicts] == ["success"] * 200
    # one request per interval for 200 waiters, each for the union of the ids (one poll per waiter would be
    # 200+); a loaded machine may fit fewer than 6 polls into 6 intervals, never more than 6 + slack
    assert 1 <= polls_while_waiting <= 9
    assert all(r == sorted(fake.started) for r in fake.requests)
    assert fake.closed == 1
    assert active_pollers() == []


async def test_waiters_coming_and_going_restart_the_poller(fake: FakeStats) -> None:
    fake.started = {"a": 0, "b": 0}
    first = asyncio.create_task(wait(fake, "a"))
    await asyncio.sleep(INTERVAL * 2)
    second = asyncio.create_task(wait(fake, "b"))
    await asyncio.sleep(INTERVAL * 3)
    assert fake.requests[0] == ["a"] and fake.requests[-1] == ["a", "b"]
    fake.started["a"] = 2
    assert (await first).outcome == "success"
    await asyncio.sleep(INTERVAL * 3)
    assert fake.requests[-1] == ["b"]  # the union shrinks when a waiter leaves
    fake.started["b"] = 2
    assert (await second).outcome == "success"
    await settle()
    assert fake.closed == 1 and active_pollers() == []
    before = len(fake.requests)
    assert (await wait(fake, "a")).outcome == "success"  # a later waiter gets a fresh poller
    await settle()
    assert len(fake.requests) == before + 1 and fake.closed == 2


async def test_one_waiters_deadline_does_not_disturb_the_others(fake: FakeStats) -> None:
    fake.started = {"a": 0}
    short = asyncio.create_task(wait(fake, "a", timeout=INTERVAL * 3))
    long = asyncio.create_task(wait(fake, "a", timeout=5.0))
    timed_out = await short
    assert timed_out.outcome == "timeout"
    assert "a: 0/2 allocations started" in timed_out.message
    assert not long.done()
    fake.started["a"] = 2
    assert (await long).outcome == "success"
    await settle()


async def test_missing_deployment_fails_only_its_waiters(fake: FakeStats) -> None:
    fake.started = {"a": 0}
    fake.missing = {"gone"}
    ok = asyncio.create_task(wait(fake, "a"))
    missing = await wait(fake, "gone")
    assert missing.outcome == "failed" and "gone: no such deployment" in missing.message
    assert not ok.done()
    fake.started["a"] = 2
    assert (await ok).outcome == "success"
    await settle()


async def test_transient_errors_mean_still_waiting_with_backoff(fake: FakeStats) -> None:
    fake.started = {"a": 2}
    fake.transient = True
    task = asyncio.create_task(wait(fake, "a"))
    await asyncio.sleep(INTERVAL * 8)
    assert not task.done()
    # backoff: 1, 2, 4... intervals between failing requests, so fewer than one per interval
    assert 2 <= len(fake.requests) <= 5
    fake.transient = False
    assert (await task).outcome == "success"
    await settle()


async def test_duplicate_triggers_both_get_the_event_from_one_request(fake: FakeStats) -> None:
    fake.started = {"a": 2}
    one, two = await asyncio.gather(wait(fake, "a"), wait(fake, "a"))
    await settle()
    assert one.outcome == two.outcome == "success"
    assert one.status == two.status
    assert len(fake.requests) == 1


async def test_connections_get_separate_pollers(fake: FakeStats) -> None:
    fake.started = {"a": 0}
    tasks = [asyncio.create_task(wait(fake, "a", conn_id=c)) for c in ("es1", "es2")]
    await asyncio.sleep(INTERVAL / 2)
    assert sorted(p.conn_id for p in active_pollers()) == ["es1", "es2"]
    fake.started["a"] = 2
    await asyncio.gather(*tasks)
    await settle()
    assert fake.closed == 2


@pytest.mark.parametrize(("started", "outcome"), [(2, "success"), (1, "timeout")])
async def test_an_expired_window_still_looks_once(fake: FakeStats, started: int, outcome: str) -> None:
    fake.started = {"a": started}
    verdict = await wait_until_started(
        conn_id="es",
        deployment_id="a",
        min_allocations=2,
        window=WaitWindow(time.time() - 10, time.time() - 1),
        hook_factory=lambda _conn: fake,
    )
    await settle()
    assert verdict.outcome == outcome and fake.requests == [["a"]]
    assert verdict.status is not None and verdict.status.started_allocations == started


class Boom(BaseException):
    """Not an Exception, so it escapes the poll loop's error handling."""


async def test_a_crashed_poller_fails_its_waiters() -> None:
    class Broken(FakeStats):
        async def aget_deployments(self, deployment_ids: Sequence[str]) -> dict[str, DeploymentStatus | Exception]:
            raise Boom("bug")

    broken = Broken()
    p = poller_for("crash", lambda _conn: broken)
    sub = p.subscribe("a", INTERVAL)
    with pytest.raises(Boom):
        await p.wait_stopped()
    result = await sub.next(1.0)
    assert isinstance(result, Boom)
    assert broken.closed == 1 and p.closed
    p.unsubscribe(sub)


async def test_the_shortest_interval_wins(fake: FakeStats) -> None:
    fake.started = {"a": 0}
    p = poller_for("es", lambda _conn: fake)
    slow = p.subscribe("a", 10.0)
    await asyncio.sleep(INTERVAL)
    assert len(fake.requests) == 1
    fast = p.subscribe("a", INTERVAL)  # wakes the sleeping poller, which now polls every INTERVAL
    await asyncio.sleep(INTERVAL * 4.5)
    assert 4 <= len(fake.requests) <= 6
    p.unsubscribe(slow)
    p.unsubscribe(fast)
    await p.wait_stopped()
    assert p.interval == poller.DEFAULT_TRIGGER_INTERVAL  # no subscribers: back to the default


# -- against the simulator: the requests the cluster really sees ------------------------------------------


def trigger(
    deployment_id: str, needed: int | None, interval: float, timeout: float = 20.0
) -> AllocationsStartedTrigger:
    now = time.time()
    return AllocationsStartedTrigger(
        deployment_id=deployment_id,
        elasticsearch_conn_id="elasticsearch_default",
        min_allocations=needed,
        started_at=now,
        end_time=now + timeout,
        poll_interval=interval,
    )


async def first_event(t: AllocationsStartedTrigger) -> dict[str, Any]:
    async for event in t.run():
        return dict(event.payload)
    raise AssertionError("no event")


def stats_requests(sim: Simulator) -> list[Any]:
    return sim.audit.events("request", endpoint="stats")


async def test_fifty_triggers_cost_one_stats_request_per_interval(sim: Simulator) -> None:
    sim.set_load_seconds(1.2)
    sim.cluster.update_deployment("my-e5", number_of_allocations=8)  # a new route on the other node: 1.2 s
    before = len(stats_requests(sim))
    started = time.monotonic()
    events = await asyncio.gather(*(first_event(trigger("my-e5", 8, 0.2)) for _ in range(50)))
    elapsed = time.monotonic() - started
    await wait_pollers_stopped()
    assert [e["status"] for e in events] == ["success"] * 50
    assert all(e["deployment"]["started_allocations"] == 8 for e in events)
    polls = len(stats_requests(sim)) - before
    assert 2 <= polls <= elapsed / 0.2 + 2  # one poll per interval, not 50
    assert active_pollers() == []


async def test_a_missing_deployment_fails_alone_against_the_cluster(sim: Simulator) -> None:
    sim.set_load_seconds(0.6)
    sim.cluster.update_deployment("my-e5", number_of_allocations=8)
    ok, gone, duplicate = await asyncio.gather(
        first_event(trigger("my-e5", 8, 0.1)),
        first_event(trigger("gone", None, 0.1)),
        first_event(trigger("my-e5", 8, 0.1)),
    )
    await wait_pollers_stopped()
    assert gone["status"] == "failed" and "gone" in gone["message"]
    assert ok["status"] == duplicate["status"] == "success"
    paths = {e.data["path"] for e in stats_requests(sim)}
    assert "/_ml/trained_models/gone,my-e5/_stats" in paths  # asked together, then one by one after the 404


async def test_transient_stats_errors_keep_waiters_waiting(sim: Simulator) -> None:
    sim.inject_fault(endpoint="stats", status=503, times=4)
    event = await first_event(trigger("my-e5", None, 0.05))
    await wait_pollers_stopped()
    assert event["status"] == "success"
    assert len(sim.audit.events("fault_injected")) == 4
