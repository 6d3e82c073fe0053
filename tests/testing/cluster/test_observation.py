"""Reads of the cluster model's state (``cluster/observation.py``), driven with a manual clock."""

from __future__ import annotations

import pytest

from airflow_esml.testing.protocol import EsError
from tests.testing.cluster.conftest import ManualClock, make


def test_wait_for_times_out(clock: ManualClock) -> None:
    cluster = make(clock, ml_1=4)
    cluster.start_deployment("my-e5")
    with pytest.raises(TimeoutError):
        cluster.wait_for("my-e5", timeout=0)
    clock.tick(1)
    assert cluster.wait_for("my-e5", timeout=0)["allocation_status"]["state"] == "fully_allocated"


def test_reads_of_an_unknown_deployment_are_404(clock: ManualClock) -> None:
    cluster = make(clock, ml_1=4)
    cluster.start_deployment("my-e5", number_of_allocations=2)
    assert cluster.target("my-e5") == 2
    for read in (cluster.deployment_stats, cluster.target, cluster.wait_for):
        with pytest.raises(EsError) as err:
            read("nope")
        assert (err.value.status, err.value.reason) == (404, "No known model deployment with id [nope]")
