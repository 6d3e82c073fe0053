"""The cluster model's test helpers: a manual clock and a small cluster driven by it."""

from __future__ import annotations

import random

import pytest

from airflow_esml.testing.cluster import Cluster
from airflow_esml.testing.protocol import AuditLog, EsVersion


class ManualClock:
    """A clock that moves only when the test calls :meth:`tick`."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += seconds


def make(clock: ManualClock, *, version: str = "9.5.1", autoscale: bool = False, **nodes: int) -> Cluster:
    """A cluster on ``clock`` with the model ``my-e5`` and one ML node per keyword (``ml_1=4``: ``ml-1``, 4 CPUs)."""
    cluster = Cluster(
        version=EsVersion.parse(version),
        audit=AuditLog(),
        load_seconds=1.0,
        autoscale=autoscale,
        autoscale_delay_seconds=5.0,
        rng=random.Random(1),
        clock=clock,
    )
    for name, processors in nodes.items():
        cluster.add_ml_node(name.replace("_", "-"), processors)
    cluster.add_model("my-e5")
    return cluster


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()
