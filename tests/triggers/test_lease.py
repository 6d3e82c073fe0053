"""LeaseKeeperTrigger against the simulator: a batch longer than its lease, a run that dies, a lost lease."""

from __future__ import annotations

import asyncio
import threading
import time

from airflow_esml.triggers.lease import LeaseKeeperTrigger
from tests.helpers import run_trigger
from tests.lease_helpers import Held, invariant_violations, lease_doc, make_store

TTL = 1.2
INTERVAL = 0.3


def keeper(lease_id: str = "batch/run/scaled", **kwargs) -> LeaseKeeperTrigger:
    values = {
        "deployment_id": "my-e5",
        "lease_id": lease_id,
        "elasticsearch_conn_id": "elasticsearch_default",
        "leases_index": "esml-leases",
        "lease_ttl": TTL,
        "renew_interval": INTERVAL,
        "lock_ttl": 10.0,
    }
    return LeaseKeeperTrigger(**{**values, **kwargs})


class KeeperThread(threading.Thread):
    """The trigger in its own event loop, as in a triggerer; ``cancel()`` is what Airflow does when the run dies."""

    def __init__(self, trigger: LeaseKeeperTrigger) -> None:
        super().__init__(daemon=True)
        self.trigger = trigger
        self.loop = asyncio.new_event_loop()
        self.event: dict | None = None
        self.task: asyncio.Task | None = None

    def run(self) -> None:
        async def first() -> None:
            async for event in self.trigger.run():
                self.event = dict(event.payload)
                return

        self.task = self.loop.create_task(first())
        try:
            self.loop.run_until_complete(self.task)
        except asyncio.CancelledError:
            pass
        finally:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    def cancel(self) -> None:
        assert self.task is not None
        self.loop.call_soon_threadsafe(self.task.cancel)
        self.join(timeout=10)


def others(stop: threading.Event) -> None:
    """Other runs on the same deployment: short leases acquired, released, left to expire; reaps in between."""
    store = make_store()
    i = 0
    while not stop.is_set():
        store.acquire("my-e5", f"other/run_{i}/scaled", 2 + 2 * (i % 2), ttl=0.4)  # 2, or 4 above the batch
        if i % 4 == 1:  # every other big one is released, the rest expire and are reaped
            store.release("my-e5", f"other/run_{i}/scaled")
        store.reconcile("my-e5")
        i += 1
        time.sleep(0.1)
    store.hook.close()


def test_serialize_round_trip():
    classpath, kwargs = keeper().serialize()
    assert classpath == "airflow_esml.triggers.lease.LeaseKeeperTrigger"
    assert LeaseKeeperTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_a_batch_three_times_longer_than_its_lease_keeps_its_allocations(sim):
    store = make_store()
    store.acquire("my-e5", "batch/run/scaled", 3, ttl=TTL)
    start = time.time()
    kept = KeeperThread(keeper())
    kept.start()
    stop = threading.Event()
    crowd = threading.Thread(target=others, args=(stop,), daemon=True)
    crowd.start()
    time.sleep(3 * TTL)  # the batch
    stop.set()
    crowd.join(timeout=20)
    end = time.time()
    store.release("my-e5", "batch/run/scaled")  # no LeaseLostError: it was never reaped
    kept.join(timeout=5)
    assert kept.event is not None and kept.event["status"] == "success" and kept.event["state"] == "released"
    history = sim.audit.target_history("my-e5")
    assert invariant_violations(history, [Held("batch", 3, start, end)]) == []
    assert len([x for x in history if start <= x[0] <= end]) >= 2  # the others did change the deployment
    time.sleep(0.5)  # the others' last leases expire
    store.reconcile("my-e5")
    assert sim.cluster.target("my-e5") == 1


def test_a_run_killed_mid_batch_is_reaped_and_restored_within_the_ttl_and_one_maintenance_interval(sim):
    store = make_store()
    store.acquire("my-e5", "batch/run/scaled", 3, ttl=TTL)
    kept = KeeperThread(keeper())
    kept.start()
    time.sleep(2 * TTL)
    assert sim.cluster.target("my-e5") == 3  # kept alive past its first expiry
    killed = time.time()
    kept.cancel()  # the run died: Airflow cancels its trigger
    maintenance = 0.3
    while lease_doc(sim) is not None and time.time() < killed + 10:
        store.reconcile("my-e5")  # the maintenance DAG (ReapDeploymentLeasesOperator)
        time.sleep(maintenance)
    restored = sim.audit.target_history("my-e5")[-1]
    assert restored[1] == 1
    assert restored[0] - killed <= TTL + INTERVAL + maintenance + 0.5


def test_a_reaped_lease_ends_its_keeper_with_a_failed_event(sim):
    store = make_store()
    store.acquire("my-e5", "batch/run/scaled", 3, ttl=0.3)
    time.sleep(0.4)
    store.reconcile("my-e5")
    event = run_trigger(keeper())
    assert event["status"] == "failed" and event["state"] == "lost"
    assert "batch/run/scaled was reaped at" in event["message"]


def test_a_released_lease_ends_its_keeper_within_one_interval(sim):
    store = make_store()
    store.acquire("my-e5", "batch/run/scaled", 2, ttl=TTL)
    kept = KeeperThread(keeper())
    kept.start()
    time.sleep(0.5)
    store.release("my-e5", "batch/run/scaled")
    released = time.time()
    kept.join(timeout=5)
    assert kept.event is not None and kept.event["state"] == "released"
    assert time.time() - released <= INTERVAL + 0.5


def test_a_release_ends_the_keeper_long_before_its_next_renewal(sim, monkeypatch):
    monkeypatch.setattr("airflow_esml.triggers.lease.CHECK_EVERY", 0.1)
    store = make_store()
    store.acquire("my-e5", "batch/run/scaled", 2, ttl=120.0)
    kept = KeeperThread(keeper(lease_ttl=120.0, renew_interval=60.0))  # the default interval of a long lease
    kept.start()
    time.sleep(0.5)
    store.release("my-e5", "batch/run/scaled")
    released = time.time()
    kept.join(timeout=10)
    assert kept.event is not None and kept.event["state"] == "released"
    assert time.time() - released <= 2.0  # the reads between renewals saw it go, not the renewal a minute later
