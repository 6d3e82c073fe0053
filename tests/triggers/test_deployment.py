from __future__ import annotations

import re
import time

from airflow_esml.triggers.deployment import AllocationsStartedTrigger
from tests.helpers import run_trigger


def trigger(**kwargs) -> AllocationsStartedTrigger:
    now = time.time()
    values = {"deployment_id": "my-e5", "elasticsearch_conn_id": "elasticsearch_default", "min_allocations": None,
              "started_at": now, "end_time": now + 20, "poll_interval": 0.1}  # fmt: skip
    return AllocationsStartedTrigger(**{**values, **kwargs})


def test_serialize_round_trip():
    original = trigger(min_allocations=3)
    classpath, kwargs = original.serialize()
    assert classpath == "airflow_esml.triggers.deployment.AllocationsStartedTrigger"
    rebuilt = AllocationsStartedTrigger(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs["end_time"] == original.end_time  # absolute wall clock, not a duration


def test_success_event_carries_the_status(sim):
    sim.cluster.update_deployment("my-e5", number_of_allocations=2)
    event = run_trigger(trigger())
    assert event["status"] == "success"
    assert event["deployment"]["started_allocations"] >= 2
    assert event["message"].startswith("my-e5: 2/2 allocations started")


def test_failed_event_for_a_missing_deployment(sim):
    event = run_trigger(trigger(deployment_id="gone"))
    assert event["status"] == "failed" and "gone" in event["message"]


def test_timeout_event_with_the_last_status(sim):
    sim.set_load_seconds(30)
    sim.cluster.update_deployment("my-e5", number_of_allocations=4)
    # long enough for the first answer on a loaded machine (the window includes the connection lookup)
    event = run_trigger(trigger(end_time=time.time() + 2.0))
    assert event["status"] == "timeout"
    assert event["deployment"]["target_allocations"] == 4
    assert re.search(r"last seen: my-e5: [0-3]/4 allocations started \(.*ml-node-1 starting", event["message"])


def test_a_deadline_already_past_still_looks_once(sim):
    event = run_trigger(trigger(end_time=time.time() - 5))
    assert event["status"] == "success"


def test_transient_errors_keep_the_trigger_waiting(sim):
    sim.inject_fault(endpoint="stats", status=503, times=6)
    event = run_trigger(trigger())
    assert event["status"] == "success"
