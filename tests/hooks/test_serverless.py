"""ElasticsearchMLHook.is_serverless: GET / read once per hook; a key that may not read it means stateful."""

from __future__ import annotations

import pytest

from airflow_esml.hooks.ml import ElasticsearchMLHook
from airflow_esml.testing import Simulator
from tests.conftest import CONN_ENV
from tests.helpers import requests_to


def test_a_stateful_cluster_is_not_serverless(sim: Simulator) -> None:
    hook = ElasticsearchMLHook()
    assert hook.is_serverless() is False and hook.is_serverless() is False
    assert requests_to(sim, "info") == 1  # read once per hook


def test_a_serverless_project_is_recognised_from_get_root(monkeypatch: pytest.MonkeyPatch) -> None:
    with Simulator(serverless=True, seed=2) as project:
        monkeypatch.setenv(CONN_ENV, project.connection_uri())
        hook = ElasticsearchMLHook()
        assert hook.is_serverless() is True and hook.is_serverless() is True
        assert requests_to(project, "info") == 1


def test_a_key_that_may_not_read_get_root_means_stateful(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    with Simulator(api_keys={"k:s": ["monitor_ml", "manage_ml"]}, seed=3) as sim:
        monkeypatch.setenv(CONN_ENV, sim.connection_uri())
        assert ElasticsearchMLHook().is_serverless() is False
    assert "Cannot read GET / (" in capsys.readouterr().out
