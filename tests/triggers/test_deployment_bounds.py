"""A deferred wait on a hung cluster ends with a timeout event within its window, and leaves nothing running."""

from __future__ import annotations

import asyncio
import re
import time

from airflow_esml.triggers.deployment import AllocationsStartedTrigger
from airflow_esml.triggers.poller import active_pollers, wait_pollers_stopped
from tests.helpers import run_trigger

#: scheduling and client overhead on a shared 2-core machine
SLACK = 1.5
WINDOW, INTERVAL = 2.0, 0.5


def trigger(window: float = WINDOW) -> AllocationsStartedTrigger:
    now = time.time()
    return AllocationsStartedTrigger(
        deployment_id="my-e5",
        elasticsearch_conn_id="hung",
        min_allocations=2,
        started_at=now,
        end_time=now + window,
        poll_interval=INTERVAL,
    )


def test_a_hung_cluster_ends_a_deferred_wait_with_a_timeout_event_within_its_window(hung_cluster):
    started = time.monotonic()
    event = run_trigger(trigger())
    assert time.monotonic() - started < WINDOW + INTERVAL + SLACK
    assert event["status"] == "timeout" and event["deployment"] is None
    said = r"timed out after [23]\.\ds of 2\.0s; last seen: my-e5: the cluster did not answer"
    assert re.match(said, event["message"])


def test_the_hung_request_is_cancelled_when_the_last_waiter_leaves(hung_cluster):
    async def wait_then_stop() -> float:
        async for event in trigger(window=1.0).run():
            assert event.payload["status"] == "timeout"
        assert active_pollers() == []
        stopping = time.monotonic()
        await asyncio.wait_for(wait_pollers_stopped(), timeout=5)  # the request itself would hang for 30 s
        return time.monotonic() - stopping

    assert asyncio.run(wait_then_stop()) < 1.0
