"""A simulator of the Elasticsearch ML trained-model deployment APIs, for tests, demos and local DAG runs.

Never imported by the provider's runtime modules. Names are imported lazily, so that
``python -m airflow_esml.testing.simulator`` does not import the module twice.

Layout: ``server`` (HTTP server, routing, faults, auth, TLS), ``cluster`` (the cluster model), ``api``
(the endpoint handlers), ``protocol`` (types all three share), ``simulator`` (wires them together) and
``cli``. The flat modules of earlier releases still import, with a ``DeprecationWarning``
(:mod:`airflow_esml._moved`).

Usage::

    from airflow_esml.testing import Simulator

    with Simulator(ml_nodes={"ml-node-1": 4}, models=["my-e5"]) as sim:
        es = sim.client()
        es.ml.start_trained_model_deployment(model_id="my-e5", wait_for="started")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_esml.testing.api.documents import DocumentStore
    from airflow_esml.testing.cluster import Cluster
    from airflow_esml.testing.protocol import AuditEvent, AuditLog, EsError, EsVersion, SimRequest, SimResponse
    from airflow_esml.testing.server.faults import Fault, FaultInjector
    from airflow_esml.testing.simulator import Simulator

__all__ = [
    "AuditEvent",
    "AuditLog",
    "Cluster",
    "DocumentStore",
    "EsError",
    "EsVersion",
    "Fault",
    "FaultInjector",
    "SimRequest",
    "SimResponse",
    "Simulator",
]

_MODULES = {
    "AuditEvent": "protocol",
    "AuditLog": "protocol",
    "EsError": "protocol",
    "EsVersion": "protocol",
    "SimRequest": "protocol",
    "SimResponse": "protocol",
    "Cluster": "cluster",
    "DocumentStore": "api.documents",
    "Fault": "server.faults",
    "FaultInjector": "server.faults",
    "Simulator": "simulator",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
