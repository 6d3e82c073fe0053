"""Small helpers shared by the provider's tests."""

from __future__ import annotations

import asyncio
import importlib
import json
import socket
import threading
from pathlib import Path
from typing import Any

from airflow.triggers.base import BaseTrigger

from airflow_esml.core.status import DeploymentStatus, parse_deployment_status
from airflow_esml.testing import Simulator

#: two ML nodes, a deployment scaled from 1 to 3 allocations with one node still starting
STATS_EXAMPLE = Path(__file__).parent / "data" / "stats_scaling_1_to_3.json"


def stats_example() -> DeploymentStatus:
    """The example's deployment: 2 of 3 allocations started, 3 pending requests, 1180/min, 24.7 ms."""
    return parse_deployment_status(json.loads(STATS_EXAMPLE.read_text())["trained_model_stats"][0])


def run_trigger(trigger: BaseTrigger) -> dict[str, Any]:
    """Run a trigger to its first event, as the triggerer would, after a serialize round trip."""
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))

    async def first_event() -> dict[str, Any]:
        async for event in rebuilt.run():
            return dict(event.payload)
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(first_event())


def requests_to(simulator: Simulator, endpoint: str) -> int:
    return len([e for e in simulator.audit.events("request") if e.data.get("endpoint") == endpoint])


def cluster_changes(simulator: Simulator) -> list[Any]:
    """Every change of any deployment's target or adaptive settings."""
    return simulator.audit.events("target_changed") + simulator.audit.events("adaptive_changed")


class HungCluster:
    """A loopback TCP server that accepts connections and never answers: a cluster that hangs.

    Use as a context manager; leaving it stops the accepting thread and closes every socket it opened.
    """

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.05)
        self.port = self._server.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name=f"hung-cluster-{self.port}", daemon=True)

    def connection_uri(self) -> str:
        """An Airflow connection URI (type ``elasticsearch``, scheme http) for ``AIRFLOW_CONN_<ID>``."""
        return f"elasticsearch://127.0.0.1:{self.port}/http"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)  # held open, never read from or answered

    def __enter__(self) -> HungCluster:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self.accepted:
            conn.close()
        self._server.close()


class XComTI:
    """A task instance whose XComs live in a dict shared by the tasks of one test run.

    :param store: ``(task_id, key) -> value``, shared by the tasks of the run.
    :param task_id: the task this instance runs.
    """

    try_number = 1

    def __init__(self, store: dict[tuple[str, str], Any], task_id: str) -> None:
        self.store, self.task_id = store, task_id

    def xcom_push(self, key: str, value: Any) -> None:
        self.store[(self.task_id, key)] = value

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        return self.store.get((task_ids, key))
