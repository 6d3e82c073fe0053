"""Fixtures shared by the provider's tests: an isolated Airflow home, a metadata DB, a running simulator."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Before anything imports Airflow: a private, throw-away Airflow home for the whole test session.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="esml-airflow-home-")
atexit.register(shutil.rmtree, _AIRFLOW_HOME, True)  # removed when the test session's process ends
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).parent.parent / "example_dags")
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")

import pytest  # noqa: E402

from airflow_esml.testing import Simulator  # noqa: E402

CONN_ENV = "AIRFLOW_CONN_ELASTICSEARCH_DEFAULT"


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """An initialised SQLite metadata DB in the session's Airflow home (for ``dag.test()``)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env={**os.environ, "AIRFLOW_HOME": _AIRFLOW_HOME},
    )
    return _AIRFLOW_HOME


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[Simulator]:
    """A running simulator with two 4-processor ML nodes and ``my-e5`` deployed with 1 allocation.

    ``elasticsearch_default`` points at it for the duration of the test.
    """
    with Simulator(ml_nodes={"ml-node-1": 4, "ml-node-2": 4}, models=["my-e5"], load_seconds=0.3, seed=1) as simulator:
        simulator.cluster.start_deployment("my-e5", number_of_allocations=1, wait=True)
        monkeypatch.setenv(CONN_ENV, simulator.connection_uri())
        yield simulator


def update_requests(simulator: Simulator) -> list[object]:
    """The update calls the simulator received."""
    return [e for e in simulator.audit.events("request") if e.data.get("endpoint") == "update"]


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries with millisecond backoff, so that tests of transient failures stay fast."""
    from airflow_esml.hooks.ml import ElasticsearchMLHook
    from airflow_esml.hooks.retry import RetryPolicy

    monkeypatch.setattr(ElasticsearchMLHook, "default_retry", RetryPolicy(attempts=4, initial_wait=0.01, max_wait=0.05))


@pytest.fixture
def hung_cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A cluster that accepts connections and never answers, as the Airflow connection ``hung``."""
    from tests.helpers import HungCluster

    with HungCluster() as cluster:
        monkeypatch.setenv("AIRFLOW_CONN_HUNG", cluster.connection_uri())
        yield cluster
