"""Fixtures for the simulator's tests, including the real-cluster switch.

Set ``ESML_REAL_CLUSTER_URL`` (and optionally ``ESML_REAL_CLUSTER_API_KEY``, ``ESML_REAL_CLUSTER_CA_CERTS``,
``ESML_REAL_CLUSTER_USER``/``ESML_REAL_CLUSTER_PASSWORD``) to run the tests that use ``es_target`` against a
real cluster; simulator-only tests are then skipped.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import elasticsearch
import pytest

from airflow_esml.testing import Simulator

REAL_URL_ENV = "ESML_REAL_CLUSTER_URL"


def real_cluster_url() -> str | None:
    return os.environ.get(REAL_URL_ENV) or None


@dataclass
class EsTarget:
    """What behavioural tests talk to: a real cluster or a running simulator.

    :param url: base URL.
    :param client_kwargs: keyword arguments for ``Elasticsearch``/``AsyncElasticsearch`` (auth, CA).
    :param simulator: the simulator, or ``None`` for a real cluster.
    """

    url: str
    client_kwargs: dict[str, Any] = field(default_factory=dict)
    simulator: Simulator | None = None

    @property
    def is_real(self) -> bool:
        return self.simulator is None

    def client(self, **kwargs: Any) -> elasticsearch.Elasticsearch:
        return elasticsearch.Elasticsearch(self.url, **{**self.client_kwargs, **kwargs})

    def async_client(self, **kwargs: Any) -> elasticsearch.AsyncElasticsearch:
        return elasticsearch.AsyncElasticsearch(self.url, **{**self.client_kwargs, **kwargs})

    def require_simulator(self) -> Simulator:
        if self.simulator is None:
            pytest.skip(f"simulator-only test: {REAL_URL_ENV} points at a real cluster")
        return self.simulator


def _real_client_kwargs() -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if os.environ.get("ESML_REAL_CLUSTER_API_KEY"):
        kwargs["api_key"] = os.environ["ESML_REAL_CLUSTER_API_KEY"]
    if os.environ.get("ESML_REAL_CLUSTER_USER"):
        kwargs["basic_auth"] = (os.environ["ESML_REAL_CLUSTER_USER"], os.environ.get("ESML_REAL_CLUSTER_PASSWORD", ""))
    if os.environ.get("ESML_REAL_CLUSTER_CA_CERTS"):
        kwargs["ca_certs"] = os.environ["ESML_REAL_CLUSTER_CA_CERTS"]
    return kwargs


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    """A running default simulator (fast loads), stopped after the test. Skips on a real-cluster run."""
    if real_cluster_url():
        pytest.skip(f"simulator-only test: {REAL_URL_ENV} points at a real cluster")
    sim = Simulator(load_seconds=0.05, seed=7)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def es_target() -> Iterator[EsTarget]:
    """The real cluster when ``ESML_REAL_CLUSTER_URL`` is set, otherwise a running simulator."""
    url = real_cluster_url()
    if url:
        yield EsTarget(url, _real_client_kwargs())
        return
    sim = Simulator(load_seconds=0.05, seed=7)
    sim.start()
    try:
        yield EsTarget(sim.url, {}, sim)
    finally:
        sim.stop()


@pytest.fixture
def es(es_target: EsTarget) -> Iterator[elasticsearch.Elasticsearch]:
    """A client of ``es_target`` (test modules that need another client define their own ``es``)."""
    with es_target.client() as client:
        yield client


@pytest.fixture
def index(es: elasticsearch.Elasticsearch) -> Iterator[str]:
    """A fresh index name on ``es_target``; the index is deleted after the test."""
    name = f"esml-test-{uuid.uuid4().hex[:8]}"
    yield name
    es.options(ignore_status=404).indices.delete(index=name)


@pytest.fixture
def real_cluster() -> EsTarget:
    """For tests that only make sense against a real cluster: skipped unless one is configured."""
    url = real_cluster_url()
    if not url:
        pytest.skip(f"real-cluster test: set {REAL_URL_ENV} (and credentials) to run it")
    return EsTarget(url, _real_client_kwargs())


@pytest.fixture
def no_stray_threads() -> Iterator[None]:
    """Fail if the test leaves threads running that it did not find at its start."""
    before = set(threading.enumerate())
    yield
    stray = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not stray, f"threads left running: {stray}"
