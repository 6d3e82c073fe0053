"""The waiting process of the waiting benchmarks: N triggers in one event loop, as one triggerer runs them.

``python -m benchmarks.waiter '<json config>'``. Config: ``mode`` (``coalesced``: the provider's
AllocationsStartedTrigger with its shared poller; ``per_trigger``: each trigger polls alone, as the trigger did
before the shared poller), ``n``, ``deployments``, ``interval``, ``min_allocations``, ``duration`` (stop after
this many seconds) or ``timeout`` (stop when every trigger has fired, at the latest after this), ``phase``
(per-trigger polls start at a random offset within one interval, as triggers deferred at different moments
do), ``seed``, ``ready_path``, ``result_path``.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

from airflow_esml.core.readiness import Verdict, WaitWindow, assess
from airflow_esml.exceptions import EsmlError, TransientRequestError
from airflow_esml.hooks.ml import ElasticsearchMLHook
from airflow_esml.triggers.deployment import AllocationsStartedTrigger

CONN_ID = "elasticsearch_default"
PAGE = resource.getpagesize()


class PollAloneTrigger(AllocationsStartedTrigger):
    """The obvious alternative: one hook and one stats request per trigger and interval."""

    phase = 0.0

    async def _wait(self) -> Verdict:
        window = WaitWindow(self.started_at, self.end_time)
        hook = ElasticsearchMLHook(self.elasticsearch_conn_id)
        verdict = Verdict("waiting", f"{self.deployment_id}: no status yet")
        try:
            await asyncio.sleep(self.phase)
            while True:
                try:
                    status = await hook.aget_deployment(self.deployment_id)
                    verdict = assess(status, self.min_allocations, progress=window.progress())
                except TransientRequestError as exc:
                    verdict = Verdict("waiting", f"{self.deployment_id}: {exc}", verdict.status)
                self.log.info("%s", verdict.message)
                if verdict.done:
                    return verdict
                if window.expired():
                    return window.timed_out(verdict)
                await asyncio.sleep(min(self.poll_interval, window.remaining()))
        except EsmlError as exc:
            return Verdict("failed", str(exc), verdict.status)
        finally:
            await hook.aclose()


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * PAGE


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def make_triggers(config: dict[str, Any]) -> list[AllocationsStartedTrigger]:
    rng = random.Random(config.get("seed", 1))
    now = time.time()
    cls = PollAloneTrigger if config["mode"] == "per_trigger" else AllocationsStartedTrigger
    deployments = config["deployments"]
    triggers = []
    for i in range(config["n"]):
        trigger = cls(
            deployment_id=deployments[i % len(deployments)],
            elasticsearch_conn_id=CONN_ID,
            min_allocations=config["min_allocations"],
            started_at=now,
            end_time=now + 3600,
            poll_interval=config["interval"],
        )
        if isinstance(trigger, PollAloneTrigger) and config.get("phase"):
            trigger.phase = rng.uniform(0, config["interval"])
        triggers.append(trigger)
    return triggers


async def run(config: dict[str, Any]) -> dict[str, Any]:
    events: list[dict[str, Any]] = []
    peak = baseline = rss_bytes()

    async def consume(trigger: AllocationsStartedTrigger) -> None:
        async for event in trigger.run():
            events.append(
                {"deployment_id": trigger.deployment_id, "status": event.payload["status"], "at": time.time()}
            )

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, rss_bytes())
            await asyncio.sleep(0.1)

    Path(config["ready_path"]).touch()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    cpu0, started = cpu_seconds(), time.time()
    sampler = asyncio.ensure_future(sample())
    tasks = [asyncio.ensure_future(consume(t)) for t in make_triggers(config)]
    if config.get("duration"):
        await asyncio.sleep(config["duration"])
    else:
        await asyncio.wait(tasks, timeout=config["timeout"])
    ended = time.time()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    cpu = cpu_seconds() - cpu0
    sampler.cancel()
    await asyncio.sleep(0.2)  # let stopping pollers close their clients
    return {
        "started": started,
        "ended": ended,
        "cpu_seconds": cpu,
        "rss_baseline_mb": baseline / 2**20,
        "rss_peak_mb": peak / 2**20,
        "events": events,
    }


def main() -> None:
    config = json.loads(sys.argv[1])
    result = asyncio.run(run(config))
    Path(config["result_path"]).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
