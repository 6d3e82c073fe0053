"""Retry with backoff and the translation of what still fails: which errors are transient, how many attempts
are made (sync and async), which provider exception and message a failure becomes, and that no message
carries a credential.

Errors are built the way the elasticsearch 8/9 client builds them, so no cluster is needed.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any

import elastic_transport
import elasticsearch
import pytest

from airflow_esml.exceptions import DeploymentNotFoundError, ElasticsearchRequestError, TransientRequestError
from airflow_esml.hooks.retry import RetryPolicy, describe_error, is_transient, translate

NotFound, Unauthenticated = elasticsearch.NotFoundError, elasticsearch.AuthenticationException
FAST = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.005)
WHAT = "stats of deployment 'my-e5'"


def api_error(
    status: int,
    error_type: str = "status_exception",
    reason: str = "something went wrong",
    *,
    cls: type[elasticsearch.ApiError] = elasticsearch.ApiError,
    headers: dict[str, str] | None = None,
    node_headers: dict[str, str] | None = None,
) -> elasticsearch.ApiError:
    """An error as the client raises it for an Elasticsearch error answer."""
    meta = elastic_transport.ApiResponseMeta(
        status=status,
        http_version="1.1",
        headers=elastic_transport.HttpHeaders(headers or {}),
        duration=0.0,
        node=elastic_transport.NodeConfig("http", "localhost", 9200, headers=node_headers or {}),
    )
    body = {"error": {"root_cause": [{"type": error_type, "reason": reason}], "type": error_type, "reason": reason}}
    return cls(error_type, meta=meta, body={**body, "status": status})


class Flaky:
    """Raises the scripted errors in turn, then returns ``"ok"``; counts the calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        self.calls += 1
        self.args = (args, kwargs)
        if self.errors:
            raise self.errors.pop(0)
        return "ok"

    async def coroutine(self, *args: Any, **kwargs: Any) -> str:
        return self(*args, **kwargs)


# -- is_transient -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_overload_and_gateway_answers_are_transient(status: int) -> None:
    assert is_transient(api_error(status))


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, elasticsearch.BadRequestError),
        (401, elasticsearch.AuthenticationException),
        (404, elasticsearch.NotFoundError),
        (409, elasticsearch.ConflictError),
        (500, elasticsearch.ApiError),
    ],
)
def test_other_answers_are_not_transient(status: int, cls: type[elasticsearch.ApiError]) -> None:
    assert not is_transient(api_error(status, cls=cls))


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (elasticsearch.ConnectionError("connection reset by peer"), True),
        (elasticsearch.ConnectionTimeout("read timed out"), True),
        (elasticsearch.SSLError("certificate verify failed"), False),  # a subclass of ConnectionError
        (elasticsearch.SerializationError("bad json"), False),
        (ValueError("not an Elasticsearch error"), False),
    ],
)
def test_connection_errors_are_transient_but_tls_errors_are_not(error: BaseException, expected: bool) -> None:
    assert is_transient(error) is expected


# -- RetryPolicy.call ---------------------------------------------------------------------------------


def test_call_passes_the_arguments_and_returns_the_result() -> None:
    fn = Flaky()
    assert FAST.call(WHAT, fn, 1, model_id="my-e5") == "ok"
    assert fn.args == ((1,), {"model_id": "my-e5"})
    assert fn.calls == 1


def test_transient_errors_are_retried_until_a_call_succeeds(caplog: pytest.LogCaptureFixture) -> None:
    fn = Flaky(api_error(503), elasticsearch.ConnectionError("reset"))
    with caplog.at_level(logging.WARNING, logger="airflow_esml.hooks.retry"):
        assert FAST.call(WHAT, fn) == "ok"
    assert fn.calls == 3
    assert f"{WHAT}: transient error (503 status_exception: something went wrong), retry 1 of 2" in caplog.text


@pytest.mark.parametrize("attempts", [1, 2, 4])
def test_transient_errors_give_up_after_the_attempts_naming_the_call(attempts: int) -> None:
    fn = Flaky(*[api_error(429, "es_rejected_execution_exception", "rejected execution")] * 10)
    policy = RetryPolicy(attempts=attempts, initial_wait=0.001, max_wait=0.005)
    with pytest.raises(TransientRequestError) as raised:
        policy.call(WHAT, fn)
    assert fn.calls == attempts
    assert str(raised.value) == (
        f"{WHAT}: still failing after retries (429 es_rejected_execution_exception: rejected execution)"
    )
    assert isinstance(raised.value.__cause__, elasticsearch.ApiError)


def test_unreachable_cluster_gives_up_with_a_transient_error() -> None:
    fn = Flaky(*[elasticsearch.ConnectionError("refused")] * 5)
    with pytest.raises(TransientRequestError, match=r"^stats of deployment 'my-e5': cannot reach Elasticsearch"):
        FAST.call(WHAT, fn)
    assert fn.calls == FAST.attempts


def test_a_cluster_that_never_answers_gives_up_saying_so() -> None:
    fn = Flaky(*[elasticsearch.ConnectionTimeout("timed out")] * 5)
    with pytest.raises(TransientRequestError, match=r"^stats of deployment 'my-e5': the cluster did not answer"):
        FAST.call(WHAT, fn)
    assert fn.calls == FAST.attempts


def test_a_terminal_error_fails_at_once_with_elasticsearchs_reason() -> None:
    fn = Flaky(api_error(400, "illegal_argument_exception", "[number_of_allocations] must be positive"))
    with pytest.raises(ElasticsearchRequestError) as raised:
        FAST.call(WHAT, fn)
    assert fn.calls == 1
    assert type(raised.value) is ElasticsearchRequestError
    assert str(raised.value) == f"{WHAT}: 400 illegal_argument_exception: [number_of_allocations] must be positive"


def test_a_404_is_a_missing_deployment() -> None:
    error = api_error(404, "resource_not_found_exception", "No known model with id [my-e5]", cls=NotFound)
    fn = Flaky(error)
    with pytest.raises(DeploymentNotFoundError, match=r"No known model with id \[my-e5\]"):
        FAST.call(WHAT, fn)
    assert fn.calls == 1


def test_a_401_points_at_the_credentials() -> None:
    fn = Flaky(api_error(401, "security_exception", "unable to authenticate", cls=Unauthenticated))
    with pytest.raises(ElasticsearchRequestError) as raised:
        FAST.call(WHAT, fn)
    assert fn.calls == 1
    assert type(raised.value) is ElasticsearchRequestError
    message = str(raised.value)
    assert "authentication failed, check the connection's credentials" in message
    assert "401 security_exception: unable to authenticate" in message


def test_a_refused_compatibility_header_points_at_es_compat_with() -> None:
    error = api_error(400, "media_type_header_exception", "Invalid media-type value on headers [Accept]")
    fn = Flaky(error)
    with pytest.raises(ElasticsearchRequestError) as raised:
        FAST.call(WHAT, fn)
    assert fn.calls == 1
    assert "es_compat_with" in str(raised.value) and "AIRFLOW__ELASTICSEARCH__ES_COMPAT_WITH" in str(raised.value)
    assert "Invalid media-type value" in str(raised.value)


def test_a_tls_error_fails_at_once_with_its_root_cause() -> None:
    try:
        try:
            raise OSError("certificate verify failed: self-signed certificate")
        except OSError as root:
            raise elasticsearch.SSLError("TLS error") from root
    except elasticsearch.SSLError as exc:
        fn = Flaky(exc)
    with pytest.raises(ElasticsearchRequestError) as raised:
        FAST.call(WHAT, fn)
    assert fn.calls == 1
    assert type(raised.value) is ElasticsearchRequestError
    assert "TLS verification failed (certificate verify failed: self-signed certificate)" in str(raised.value)
    assert "ca_certs" in str(raised.value)


def test_errors_that_are_not_elasticsearchs_pass_through_unchanged() -> None:
    error = KeyError("deployment_stats")
    fn = Flaky(error)
    with pytest.raises(KeyError) as raised:
        FAST.call(WHAT, fn)
    assert raised.value is error
    assert fn.calls == 1


# -- RetryPolicy.acall --------------------------------------------------------------------------------


async def test_acall_retries_transient_errors_then_succeeds() -> None:
    fn = Flaky(api_error(502), api_error(504))
    assert await FAST.acall(WHAT, fn.coroutine, model_id="my-e5") == "ok"
    assert fn.calls == 3
    assert fn.args == ((), {"model_id": "my-e5"})


async def test_acall_gives_up_after_the_attempts() -> None:
    fn = Flaky(*[elasticsearch.ConnectionError("reset")] * 10)
    with pytest.raises(TransientRequestError, match="cannot reach Elasticsearch after retries"):
        await FAST.acall(WHAT, fn.coroutine)
    assert fn.calls == FAST.attempts


@pytest.mark.parametrize(
    ("error", "expected", "text"),
    [
        (api_error(404, cls=elasticsearch.NotFoundError), DeploymentNotFoundError, "404 status_exception"),
        (api_error(401, cls=elasticsearch.AuthenticationException), ElasticsearchRequestError, "credentials"),
        (api_error(409, "version_conflict_engine_exception", "conflict", cls=elasticsearch.ConflictError),
         ElasticsearchRequestError, "409 version_conflict_engine_exception: conflict"),
    ],
)  # fmt: skip
async def test_acall_fails_at_once_on_a_terminal_error(
    error: elasticsearch.ApiError, expected: type[Exception], text: str
) -> None:
    fn = Flaky(error)
    with pytest.raises(expected) as raised:
        await FAST.acall(WHAT, fn.coroutine)
    assert type(raised.value) is expected
    assert text in str(raised.value) and str(raised.value).startswith(WHAT)
    assert fn.calls == 1


async def test_acall_accepts_a_function_that_returns_a_coroutine() -> None:
    fn = Flaky(api_error(503))

    def not_a_coroutine_function() -> Any:  # like the async client's methods
        return fn.coroutine()

    assert await FAST.acall(WHAT, not_a_coroutine_function) == "ok"
    assert fn.calls == 2


# -- describe_error and credentials -------------------------------------------------------------------


def test_describe_error_of_an_answer_is_status_type_and_root_cause() -> None:
    error = api_error(503, "cluster_block_exception", "blocked by: [SERVICE_UNAVAILABLE/2/no master];")
    assert describe_error(error) == "503 cluster_block_exception: blocked by: [SERVICE_UNAVAILABLE/2/no master];"


def test_describe_error_of_a_body_without_an_error_object() -> None:
    meta = elastic_transport.ApiResponseMeta(
        status=502, http_version="1.1", headers=elastic_transport.HttpHeaders(), duration=0.0,
        node=elastic_transport.NodeConfig("http", "localhost", 9200),
    )  # fmt: skip
    assert describe_error(elasticsearch.ApiError("502", meta=meta, body="Bad Gateway")) == "502 502: Bad Gateway"
    reset = elasticsearch.ConnectionError("reset")
    assert describe_error(reset) == f"ConnectionError: {reset}"


SECRET = "SECRET-api-key-0123456789"
PASSWORD = "PASSWORD-s3cr3t"


def test_describe_and_translate_never_include_the_request_credentials() -> None:
    """The error's meta carries the node's headers (the credentials); the description uses none of them."""
    auth = {"authorization": f"ApiKey {SECRET}"}
    for status, cls in [(401, elasticsearch.AuthenticationException), (503, elasticsearch.ApiError),
                        (400, elasticsearch.BadRequestError), (404, elasticsearch.NotFoundError)]:  # fmt: skip
        error = api_error(status, "security_exception", "missing authentication", cls=cls, node_headers=auth)
        assert SECRET in str(dict(error.meta.node.headers))  # the credential is reachable from the error
        assert SECRET not in describe_error(error)
        assert SECRET not in str(translate(WHAT, error))


@pytest.mark.parametrize(
    "client_kwargs",
    [
        {"api_key": SECRET},
        {"basic_auth": ("elastic", PASSWORD)},
        {"bearer_auth": SECRET},
    ],
    ids=["api_key", "basic_auth", "bearer_auth"],
)
def test_a_client_with_credentials_that_cannot_connect_leaks_none(
    client_kwargs: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    client = elasticsearch.Elasticsearch("http://127.0.0.1:1", max_retries=0, **client_kwargs)
    fn = Counting(client.info)
    try:
        with caplog.at_level(logging.WARNING, logger="airflow_esml.hooks.retry"):
            with pytest.raises(TransientRequestError) as raised:
                RetryPolicy(attempts=2, initial_wait=0.001).call("cluster info", fn)
    finally:
        client.close()
    assert fn.calls == 2
    basic = base64.b64encode(f"elastic:{PASSWORD}".encode()).decode()
    for text in (str(raised.value), describe_error(raised.value.__cause__), caplog.text):  # type: ignore[arg-type]
        assert SECRET not in text and PASSWORD not in text and basic not in text
    assert "cannot reach Elasticsearch after retries" in str(raised.value)
    assert "transient error (ConnectionError" in caplog.text


class Counting:
    """Counts the calls of ``fn``."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.fn(*args, **kwargs)
