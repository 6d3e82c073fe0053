"""
TLS between Airflow and Elasticsearch, without the full Airflow stack: the hook, configured only through an
``AIRFLOW_CONN_*`` environment variable as a task would be, against the simulator serving HTTPS with a
self-signed CA and demanding an API key.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airflow_esml.exceptions import ElasticsearchRequestError
from airflow_esml.hooks.ml import ElasticsearchMLHook
from airflow_esml.hooks.retry import RetryPolicy
from tests.e2e._simulator import RunningSimulator
from tests.e2e.conftest import other_ca

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

DEPLOYMENT = "e2e-model"
UseConnection = Callable[[str], ElasticsearchMLHook]


@pytest.fixture
def use_connection(monkeypatch: pytest.MonkeyPatch) -> Iterator[UseConnection]:
    """Install a connection as ``AIRFLOW_CONN_ESML_TLS`` and return a hook on it."""
    hooks: list[ElasticsearchMLHook] = []

    def install(connection_json: str) -> ElasticsearchMLHook:
        monkeypatch.setenv("AIRFLOW_CONN_ESML_TLS", connection_json)
        hook = ElasticsearchMLHook("esml_tls", retry=RetryPolicy(attempts=2, initial_wait=0.01, max_wait=0.02))
        hooks.append(hook)
        return hook

    yield install
    for hook in hooks:
        hook.close()


def full_error_text(exc: BaseException) -> str:
    """The exception as a task log would show it: message, chained causes and traceback."""
    return "".join(traceback.format_exception(exc))


def test_ca_from_the_connection_verifies_the_server(simulator: RunningSimulator, use_connection: UseConnection) -> None:
    hook = use_connection(simulator.connection_json())
    status = hook.get_deployment(DEPLOYMENT)
    assert status.deployment_id == DEPLOYMENT


def test_verification_is_on_by_default(simulator: RunningSimulator, use_connection: UseConnection) -> None:
    """No ``ca_certs`` and no ``verify_certs``: the system trust store rejects the self-signed chain."""
    hook = use_connection(simulator.connection_json(ca_certs=None))
    with pytest.raises(ElasticsearchRequestError, match="TLS verification failed") as caught:
        hook.get_deployment(DEPLOYMENT)
    assert simulator.api_key not in full_error_text(caught.value)


def test_wrong_ca_fails_with_a_clear_message(
    simulator: RunningSimulator, use_connection: UseConnection, tmp_path: Path
) -> None:
    hook = use_connection(simulator.connection_json(ca_certs=str(other_ca(tmp_path))))
    with pytest.raises(ElasticsearchRequestError) as caught:
        hook.get_deployment(DEPLOYMENT)
    message = str(caught.value)
    assert "TLS verification failed" in message
    assert DEPLOYMENT in message  # names the call
    assert "'ca_certs'" in message  # tells the operator what to change
    assert "certificate verify failed" in full_error_text(caught.value)  # OpenSSL's reason, in the chain
    assert simulator.api_key not in full_error_text(caught.value)


def test_verify_certs_false_works_and_warns(
    simulator: RunningSimulator,
    use_connection: UseConnection,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # a wrong CA as well: with verification off it must not matter
    hook = use_connection(simulator.connection_json(ca_certs=str(other_ca(tmp_path)), verify_certs=False))
    status = hook.get_deployment(DEPLOYMENT)
    assert status.deployment_id == DEPLOYMENT
    # Airflow's structlog writes task-side log lines to the process output, as a worker's log would get them
    output = "".join(capfd.readouterr())
    warnings = [line for line in output.splitlines() if "warning" in line.lower()]
    assert any("verify_certs=false" in w and "NOT verified" in w for w in warnings), output
    assert simulator.api_key not in output


def test_wrong_api_key_is_refused_without_echoing_it(
    simulator: RunningSimulator, use_connection: UseConnection
) -> None:
    wrong_key = "e2e-wrong-key-" + simulator.api_key[::-1]
    hook = use_connection(simulator.connection_json(api_key=wrong_key))
    with pytest.raises(ElasticsearchRequestError, match="authentication failed") as caught:
        hook.get_deployment(DEPLOYMENT)
    text = full_error_text(caught.value)
    assert wrong_key not in text and simulator.api_key not in text
