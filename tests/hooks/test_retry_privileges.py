"""The translation of refused calls: a 403 ``security_exception`` becomes a terminal error naming the action and
the privileges that grant it (never the key), a 410 a terminal "not available here", and every translated error
keeps the HTTP status it came from."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_esml.exceptions import (
    ApiNotAvailableError,
    DeploymentNotFoundError,
    ElasticsearchRequestError,
    PrivilegeError,
    TransientRequestError,
)
from airflow_esml.hooks.retry import RetryPolicy, translate
from tests.hooks.test_retry import Flaky, api_error

FAST = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.005)
UPDATE = "update of deployment 'my-e5'"
KEY_ID = "VuaCfGcBCdbkQm-e5aOx"
CLUSTER_DENIAL = (
    f"action [cluster:admin/xpack/ml/trained_models/deployment/update] is unauthorized for API key id [{KEY_ID}] "
    "of user [airflow], this action is granted by the cluster privileges [manage_ml,manage,all]"
)
INDEX_DENIAL = (
    f"action [indices:data/write/index:op_type/index] is unauthorized for API key id [{KEY_ID}] of user [airflow] "
    "on indices [esml-leases], this action is granted by the index privileges [create,index,write,all]"
)


def test_a_cluster_denial_names_the_action_and_the_privileges() -> None:
    fn = Flaky(*[api_error(403, "security_exception", CLUSTER_DENIAL)] * 3)
    with pytest.raises(PrivilegeError) as raised:
        FAST.call(UPDATE, fn)
    error = raised.value
    assert fn.calls == 1  # terminal: never retried
    assert isinstance(error, AirflowFailException) and isinstance(error, ElasticsearchRequestError)
    assert error.status == 403 and error.kind == "cluster"
    assert error.action == "cluster:admin/xpack/ml/trained_models/deployment/update"
    assert error.privileges == ("manage_ml", "manage", "all")
    assert str(error).startswith(
        f"{UPDATE}: permission denied: action [cluster:admin/xpack/ml/trained_models/deployment/update] needs the "
        "cluster privilege [manage_ml] (or one of [manage, all]), which the connection's API key or user does not "
        "have"
    )


def test_an_index_denial_names_the_indices() -> None:
    error = translate("write of lease 'my-e5'", api_error(403, "security_exception", INDEX_DENIAL))
    assert isinstance(error, PrivilegeError)
    assert error.kind == "index" and error.indices == ("esml-leases",) and error.privileges[0] == "create"
    assert (
        "action [indices:data/write/index:op_type/index] on indices [esml-leases] needs the index privilege "
        "[create] (or one of [index, write, all])"
    ) in str(error)


def test_the_older_denial_wording_is_understood() -> None:
    reason = "action [cluster:monitor/nodes/info] is unauthorized for user [u], this action is granted by the privileges [monitor,manage,all]"  # noqa: E501
    error = translate("nodes info", api_error(403, "security_exception", reason))
    assert isinstance(error, PrivilegeError) and error.privileges == ("monitor", "manage", "all")
    assert error.kind == "cluster"


def test_a_denial_without_the_usual_text_is_still_a_privilege_error() -> None:
    error = translate("nodes info", api_error(403, "security_exception", "forbidden by the proxy"))
    assert isinstance(error, PrivilegeError) and error.action is None and error.privileges == ()
    assert str(error) == (
        "nodes info: permission denied: the connection's API key or user lacks a privilege "
        "(403 security_exception: forbidden by the proxy)"
    )


def test_a_denial_never_carries_the_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "c2VjcmV0LWtleS12YWx1ZQ=="
    error = translate(UPDATE, api_error(403, "security_exception", CLUSTER_DENIAL, node_headers={
        "authorization": f"ApiKey {secret}"}))  # fmt: skip
    assert secret not in str(error) and secret not in repr(error.args)


def test_a_410_is_a_terminal_not_available_error() -> None:
    reason = "Request for uri [/_nodes] with method [GET] exists but is not available when running in serverless mode"
    error = translate("nodes info (GET _nodes)", api_error(410, "api_not_available_exception", reason))
    assert isinstance(error, ApiNotAvailableError) and isinstance(error, AirflowFailException)
    assert error.status == 410
    assert str(error) == (
        "nodes info (GET _nodes): this API is not available on this cluster (410 api_not_available_exception: "
        f"{reason})"
    )


@pytest.mark.parametrize(
    ("status", "cls"), [(404, DeploymentNotFoundError), (400, ElasticsearchRequestError), (503, TransientRequestError)]
)
def test_every_translated_error_keeps_its_status(status: int, cls: type[Exception]) -> None:
    error = translate("ML info (GET _ml/info)", api_error(status))
    assert type(error) is cls and error.status == status  # type: ignore[attr-defined]
