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
    with Simulator(ml_nodes={"ml-1": deployments}, models=models, load_seconds=0.05, seed=7) as sim:
        ids = []
        for model in models:
            sim.cluster.start_deployment(model, deployment_id=f"{model}-dep", number_of_allocations=1, wait=True)
            ids.append(f"{model}-dep")
        sim.add_ml_node("ml-2", 4 * deployments)
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


def readiness_lag(
    mode: str, n: int, interval: float, runs: int, timeout: float, seed: int = 1, lead: float = 2.0
) -> dict[str, Any]:
    """Lag from each deployment's readiness to each trigger's event, over ``runs`` fresh clusters."""
    lags: list[float] = []
    medians: list[float] = []
    requests: list[float] = []
    rng = random.Random(seed)
    for run in range(runs):
        with cluster() as (sim, ids):
            env = {CONN_ENV: sim.connection_uri()}
            config = {"mode": mode, "n": n, "deployments": ids, "interval": interval, "min_allocations": 2}
            config.update(timeout=timeout, phase=True, seed=seed + run)
            child = Child.spawn(config, env)
            try:
                child.wait_ready()
                # each deployment becomes ready at its own moment, 2 to 5 s after the triggers start waiting
                for i, model in enumerate(ids):
                    sim.set_load_seconds(lead + 0.3 * i + rng.uniform(0, 0.3), model_id=model.removesuffix("-dep"))
                updated = time.time()
                for deployment_id in ids:
                    sim.cluster.update_deployment(deployment_id, number_of_allocations=2)
                child.go()
                result = child.result(timeout + 60)
            finally:
                child.kill()
            ready = ready_times(sim, ids, updated)
            run_lags = [e["at"] - ready[e["deployment_id"]] for e in result["events"] if e["status"] == "success"]
            if len(run_lags) != n:
                raise RuntimeError(f"{mode}: {len(run_lags)} of {n} triggers succeeded")
            lags.extend(run_lags)
            medians.append(median(run_lags))
            elapsed = result["ended"] - result["started"]
            requests.append(stats_requests(sim, result["started"], result["ended"]) / elapsed)
    return {
        "mode": mode,
        "n": n,
        "interval": interval,
        "runs": runs,
        "median_lag": median(medians),
        "p90_lag": sorted(lags)[int(0.9 * (len(lags) - 1))],
        "max_lag": max(lags),
        "requests_per_second": median(requests),
    }
