"""Tables 1 and 2: the cluster load of waiting, and how late a waiter notices readiness."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from airflow_esml.testing import Simulator
from benchmarks.common import Child, median

DEPLOYMENTS = 10
CONN_ENV = "AIRFLOW_CONN_ELASTICSEARCH_DEFAULT"


@contextmanager
def cluster(deployments: int = DEPLOYMENTS) -> Iterator[tuple[Simulator, list[str]]]:
    """A simulator with ``deployments`` deployments of one started allocation each, on a node they fill.

    A second, empty node joins afterwards, so that a second allocation of any deployment is a new route on it
    that takes the model's load time to start.
    """
    models = [f"model-{i}" for i in range(deployments)]
    memory = max(16, 8 * deployments) * 2**30  # ML memory for every model on each node (the simulator checks it)
    with Simulator(ml_nodes={}, models=models, load_seconds=0.05, seed=7) as sim:
        sim.add_ml_node("ml-1", deployments, memory_bytes=memory)
        ids = []
        for model in models:
            sim.cluster.start_deployment(model, deployment_id=f"{model}-dep", number_of_allocations=1, wait=True)
            ids.append(f"{model}-dep")
        sim.add_ml_node("ml-2", 4 * deployments, memory_bytes=memory)
        yield sim, ids


def stats_requests(sim: Simulator, since: float, until: float) -> int:
    return sum(1 for e in sim.audit.events("request", endpoint="stats") if since <= e.at <= until)


@dataclass
class LoadRow:
    mode: str
    n: int
    requests_per_interval: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)
    growth_mb: list[float] = field(default_factory=list)
    note: str = ""

    def summary(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "n": self.n,
            "runs": len(self.cpu_seconds),
            "requests_per_interval": median(self.requests_per_interval),
            "cpu_seconds": median(self.cpu_seconds),
            "peak_mb": median(self.peak_mb),
            "growth_mb": median(self.growth_mb),
            "note": self.note,
        }


def cluster_load(
    sizes: list[int], per_trigger_cap: int, runs: int, seconds: float, interval: float = 1.0, warmup: float = 1.0
) -> dict[str, Any]:
    """Stats requests per interval, CPU and memory of N waiting triggers (coalesced and one poll per trigger).

    The deployments have a second allocation that never finishes loading, so every trigger keeps waiting.
    """
    rows = {(mode, n): LoadRow(mode, n) for n in sizes for mode in ("coalesced", "per_trigger")}
    with cluster() as (sim, ids):
        sim.set_load_seconds(1e6)
        for deployment_id in ids:
            sim.cluster.update_deployment(deployment_id, number_of_allocations=2)
        env = {CONN_ENV: sim.connection_uri()}
        for _ in range(runs):
            for n in sizes:
                for mode in ("coalesced", "per_trigger"):
                    row = rows[(mode, n)]
                    if mode == "per_trigger" and n > per_trigger_cap:
                        row.note = f"not run: capped at N={per_trigger_cap} (by construction N requests per interval)"
                        continue
                    config = {"mode": mode, "n": n, "deployments": ids, "interval": interval}
                    config.update(min_allocations=2, duration=seconds + warmup, phase=True)
                    result = run_child(config, env, timeout=seconds + warmup + 60)
                    start = result["started"] + warmup
                    count = stats_requests(sim, start, result["ended"])
                    row.requests_per_interval.append(count * interval / (result["ended"] - start))
                    row.cpu_seconds.append(result["cpu_seconds"])
                    row.peak_mb.append(result["rss_peak_mb"])
                    row.growth_mb.append(result["rss_peak_mb"] - result["rss_baseline_mb"])
    return {
        "interval": interval,
        "seconds": seconds,
        "warmup": warmup,
        "deployments": DEPLOYMENTS,
        "rows": [r.summary() for r in rows.values()],
    }


def run_child(config: dict[str, Any], env: dict[str, str], timeout: float) -> dict[str, Any]:
    child = Child.spawn(config, env)
    try:
        child.wait_ready()
        child.go()
        return child.result(timeout)
    finally:
        child.kill()


def ready_times(sim: Simulator, ids: list[str], since: float) -> dict[str, float]:
    """When each deployment's last awaited allocation started (route started or grown, after ``since``)."""
    ready: dict[str, float] = {}
    for event in sim.audit.events():
        if event.at < since or event.data.get("deployment_id") not in ids:
            continue
        if (event.kind == "route_state" and event.data.get("state") == "started") or event.kind == "route_allocations":
            ready[event.data["deployment_id"]] = event.at
    return ready


def fresh_seed() -> int:
    """A seed no earlier run used: every run draws new ready times (and new per-trigger poll phases)."""
    return random.SystemRandom().randrange(2**32)


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, linear between the two nearest ranks; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def requests_per_interval(sim: Simulator, started: float, ended: float, interval: float) -> float:
    """Stats requests per poll interval, counted over the whole intervals from ``started``.

    Counting whole intervals, not requests per second of the window, keeps the poll that ends the window (the
    one that saw the last deployment ready) from inflating the rate of a window a few intervals long. A wait
    shorter than one interval lies within one interval: its requests are that interval's.
    """
    whole = max(1, int((ended - started) // interval))
    until = started + whole * interval if ended - started >= interval else ended
    return stats_requests(sim, started, until) / whole


def detecting_request_start(sim: Simulator, deployment_id: str, before: float) -> float | None:
    """When the server received the last stats request naming ``deployment_id`` (or ``_all``) that it answered
    before ``before``: the request whose answer told the trigger its deployment was ready."""
    latest = None
    for event in sim.audit.events("request", endpoint="stats"):
        if event.at > before:
            break
        ids = event.data["path"].split("/_ml/trained_models/", 1)[-1].split("/", 1)[0].split(",")
        if deployment_id in ids or "_all" in ids:
            latest = event.at - float(event.data.get("duration") or 0.0)
    return latest


def readiness_lag(
    mode: str,
    n: int,
    interval: float,
    runs: int,
    timeout: float,
    seed: int | None = None,
    lead: float = 2.0,
    spread: float = 3.0,
) -> dict[str, Any]:
    """Lag from each deployment's readiness to its trigger's event, over ``runs`` fresh clusters.

    Each run has ``n`` deployments with one trigger each, so that every trigger is one independent draw: its
    deployment becomes ready at ``lead`` plus a uniform draw over ``spread`` seconds after the update (with the
    per-trigger poller, the trigger's poll phase is drawn too). Each run takes a fresh seed (``seed + run`` when
    ``seed`` is given, to replay a row); the seeds are in the result. The simulator's own seed only names its
    nodes and drives injected faults (none here), so it does not repeat the draws.

    With periodic polling the wait from readiness to the next poll is uniform over one interval, so the
    expected median lag is half the interval plus the time from the poll to the trigger's event ("request"),
    and the expected p90 is 0.9 interval plus it. "request" is measured per draw: from the server receiving the
    stats request that saw the deployment started (audit time minus its duration) to the trigger's event.
    """
    lags: list[float] = []
    request_seconds: list[float] = []
    poll_waits: list[float] = []
    per_interval: list[float] = []
    seeds: list[int] = []
    for run in range(runs):
        run_seed = fresh_seed() if seed is None else seed + run
        seeds.append(run_seed)
        print(f"readiness lag: {mode}, N={n}, interval {interval} s, run {run + 1}/{runs}, seed {run_seed}")
        rng = random.Random(run_seed)
        with cluster(n) as (sim, ids):
            env = {CONN_ENV: sim.connection_uri()}
            config = {"mode": mode, "n": n, "deployments": ids, "interval": interval, "min_allocations": 2}
            config.update(timeout=timeout, phase=True, seed=run_seed)
            child = Child.spawn(config, env)
            try:
                child.wait_ready()
                for model in ids:
                    sim.set_load_seconds(lead + rng.uniform(0, spread), model_id=model.removesuffix("-dep"))
                updated = time.time()
                for deployment_id in ids:
                    sim.cluster.update_deployment(deployment_id, number_of_allocations=2)
                child.go()
                result = child.result(timeout + 60)
            finally:
                child.kill()
            ready = ready_times(sim, ids, updated)
            events = [e for e in result["events"] if e["status"] == "success"]
            if len(events) != n or len({e["deployment_id"] for e in events}) != n:
                raise RuntimeError(f"{mode}: {len(events)} of {n} triggers succeeded")
            for event in events:
                lags.append(event["at"] - ready[event["deployment_id"]])
                request_start = detecting_request_start(sim, event["deployment_id"], event["at"])
                if request_start is not None:
                    request_seconds.append(event["at"] - request_start)
                    poll_waits.append(request_start - ready[event["deployment_id"]])
            per_interval.append(requests_per_interval(sim, result["started"], result["ended"], interval))
    request = median(request_seconds)
    return {
        "mode": mode,
        "n": n,
        "interval": interval,
        "runs": runs,
        "seeds": seeds,
        "draws": len(lags),
        "median_lag": median(lags),
        "p90_lag": percentile(lags, 0.9),
        "max_lag": max(lags),
        "request_seconds": request,
        "poll_wait_seconds": median(poll_waits),
        "expected_median_lag": interval / 2 + request,
        "expected_p90_lag": 0.9 * interval + request,
        "requests_per_interval": median(per_interval),
    }
