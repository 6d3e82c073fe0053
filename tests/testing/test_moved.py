"""The simulator's flat module paths of earlier releases still import and warn; its package faces do not warn.

Every old path of :data:`airflow_esml._moved.MOVED` is checked in ``tests/test_moved.py``.
"""

from __future__ import annotations

import importlib
import sys
import warnings

import pytest

import airflow_esml.testing


def _import_fresh(name: str, monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.delattr(airflow_esml.testing, name.rpartition(".")[2], raising=False)
    return importlib.import_module(name)


def test_old_paths_used_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_esml.testing.cluster.inference import fake_result
    from airflow_esml.testing.server.tls import write_tls_files

    with pytest.warns(DeprecationWarning, match="import from airflow_esml.testing.cluster.inference"):
        old_inference = _import_fresh("airflow_esml.testing.inference", monkeypatch)
    with pytest.warns(DeprecationWarning, match="import from airflow_esml.testing.server.tls"):
        old_tls = _import_fresh("airflow_esml.testing.tls", monkeypatch)
    assert old_inference.fake_result is fake_result
    assert old_tls.write_tls_files is write_tls_files


def test_package_faces_keep_their_old_module_names_without_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        from airflow_esml.testing.cluster import Cluster
        from airflow_esml.testing.server import Router, SimApp, SimHTTPServer, endpoint_name

    from airflow_esml.testing.cluster.cluster import Cluster as NewCluster
    from airflow_esml.testing.server.routing import Router as NewRouter

    assert Cluster is NewCluster and Router is NewRouter
    assert SimApp and SimHTTPServer and endpoint_name


def test_public_names() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        from airflow_esml.testing import (
            AuditEvent,
            AuditLog,
            Cluster,
            DocumentStore,
            EsError,
            EsVersion,
            Fault,
            FaultInjector,
            SimRequest,
            SimResponse,
            Simulator,
        )
    assert [c.__name__ for c in (AuditEvent, AuditLog, Cluster, DocumentStore, EsError, EsVersion)] == [
        "AuditEvent",
        "AuditLog",
        "Cluster",
        "DocumentStore",
        "EsError",
        "EsVersion",
    ]
    assert [c.__name__ for c in (Fault, FaultInjector, SimRequest, SimResponse, Simulator)] == [
        "Fault",
        "FaultInjector",
        "SimRequest",
        "SimResponse",
        "Simulator",
    ]


def test_unknown_module_is_still_missing() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("airflow_esml.testing.no_such_module")
