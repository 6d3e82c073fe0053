"""Calls with a deadline: no retry past it, each request's timeout capped by the time left; long texts cut."""

from __future__ import annotations

import asyncio
import re
import time

import elasticsearch
import pytest
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig

from airflow_esml.exceptions import DeploymentNotFoundError, InvalidParameterError, TransientRequestError
from airflow_esml.hooks.ml import ElasticsearchMLHook
from airflow_esml.hooks.retry import MIN_ATTEMPT_TIMEOUT, RetryPolicy, attempt_timeout, describe_error, translate

#: scheduling and a client's own overhead, on a shared 2-core machine
SLACK = 1.0


def reset() -> elasticsearch.ConnectionError:
    return elasticsearch.ConnectionError("connection reset")


class Failing:
    """Fails with a transient error every time, and counts the attempts."""

    def __init__(self) -> None:
        self.attempts = 0

    def __call__(self) -> None:
        self.attempts += 1
        raise reset()


def test_without_a_deadline_every_attempt_is_made():
    fn = Failing()
    with pytest.raises(TransientRequestError, match="cannot reach Elasticsearch after retries"):
        RetryPolicy(attempts=4, initial_wait=0.001, max_wait=0.002).call("cluster info", fn)
    assert fn.attempts == 4


#: 20 attempts whose backoffs add up to about 5 s
PATIENT = RetryPolicy(attempts=20, initial_wait=0.2, max_wait=0.5)


def test_no_retry_starts_whose_backoff_would_pass_the_deadline():
    fn = Failing()
    started = time.monotonic()
    with pytest.raises(TransientRequestError):
        PATIENT.call("x", fn, deadline=time.time() + 1.0)
    assert time.monotonic() - started < 1.0  # the attempts fail at once, so only a backoff could pass it
    assert 1 <= fn.attempts < 20


def test_retries_within_the_deadline_still_happen():
    fn = Failing()
    with pytest.raises(TransientRequestError):
        RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.002).call("x", fn, deadline=time.time() + 30)
    assert fn.attempts == 3


def test_async_calls_keep_the_deadline_too():
    attempts = 0

    async def failing() -> None:
        nonlocal attempts
        attempts += 1
        raise reset()

    started = time.monotonic()
    with pytest.raises(TransientRequestError):
        asyncio.run(PATIENT.acall("x", failing, deadline=time.time() + 1.0))
    assert time.monotonic() - started < 1.0 + SLACK and 1 <= attempts < 20


@pytest.mark.parametrize(
    ("left", "expected"),
    [(100.0, 30.0), (30.0, 30.0), (2.5, 2.5), (0.2, MIN_ATTEMPT_TIMEOUT), (-5.0, MIN_ATTEMPT_TIMEOUT)],
)
def test_each_attempt_gets_the_time_left_within_bounds(left, expected):
    assert attempt_timeout(1000.0 + left, 30.0, now=1000.0) == pytest.approx(expected)


def test_a_hung_cluster_ends_a_read_at_its_deadline_with_a_message_that_says_so(hung_cluster):
    hook = ElasticsearchMLHook("hung")
    assert hook.client is not None  # the connection lookup (Airflow's, not the cluster's time) before the clock
    started = time.monotonic()
    try:
        with pytest.raises(TransientRequestError) as excinfo:
            hook.get_deployment("my-e5", deadline=time.time() + 1.5)  # the connection's timeout is 30 s
    finally:
        hook.close()
    assert time.monotonic() - started < 1.5 + SLACK
    # the first request, the lookup of what the id names (GET _inference/my-e5), is bounded like the stats read
    # (the seconds it names are measured, so a loaded machine may show more than 1.5; the bound is asserted above)
    said = r"(stats of deployment|inference endpoint lookup of) 'my-e5': the cluster did not answer within \d+\.\ds"
    assert re.search(said, str(excinfo.value))
    assert "ConnectionTimeout" in str(excinfo.value)
    assert hook.client is not None and hook.request_timeout == 30.0  # the configured timeout is left alone


def test_a_hung_cluster_ends_an_async_read_at_its_deadline(hung_cluster):
    hook = ElasticsearchMLHook("hung")

    async def read() -> float:
        await hook.aclient()  # the connection lookup (Airflow's, not the cluster's time) before the clock
        started = time.monotonic()
        try:
            with pytest.raises(TransientRequestError, match="did not answer within"):
                await hook.aget_deployment("my-e5", deadline=time.time() + 1.5)
        finally:
            await hook.aclose()
        return time.monotonic() - started

    assert asyncio.run(read()) < 1.5 + SLACK


@pytest.mark.parametrize("deployment_id", ["", "   "])
def test_an_empty_id_sends_no_request(sim, deployment_id):
    hook = ElasticsearchMLHook()
    calls = [
        lambda: hook.get_deployment(deployment_id),
        lambda: hook.update_deployment(deployment_id, number_of_allocations=2),
        lambda: hook.infer(deployment_id, [{"text_field": "a"}]),
        lambda: asyncio.run(hook.aget_deployment(deployment_id)),
        lambda: asyncio.run(hook.aget_deployments(["my-e5", deployment_id])),
    ]
    for call in calls:
        with pytest.raises(InvalidParameterError, match="deployment_id must be a non-empty string"):
            call()
    assert sim.audit.events("request") == []
    assert sim.cluster.target("my-e5") == 1


@pytest.mark.parametrize("length", [5_000, 70_000])
def test_a_huge_id_gives_a_readable_error(sim, length):
    with pytest.raises(Exception) as excinfo:
        ElasticsearchMLHook().get_deployment("x" * length)
    assert len(str(excinfo.value)) < 1000
    assert f"({length} characters)" in str(excinfo.value)


def api_error(status: int, reason: str) -> elasticsearch.ApiError:
    meta = ApiResponseMeta(status, "1.1", HttpHeaders(), 0.01, NodeConfig("http", "localhost", 9200))
    body = {"error": {"type": "resource_not_found_exception", "reason": reason}}
    return elasticsearch.NotFoundError("resource_not_found_exception", meta, body)


def test_long_reasons_from_elasticsearch_are_cut():
    error = api_error(404, f"No known trained model with model_id [{'m' * 70_000}]")
    assert len(describe_error(error)) < 400
    translated = translate("stats of deployment 'm...'", error)
    assert isinstance(translated, DeploymentNotFoundError) and len(str(translated)) < 500
    assert str(translated).startswith("stats of deployment 'm...': 404 resource_not_found_exception: No known")
    assert "characters)" in str(translated)


def test_short_reasons_are_kept_whole():
    error = api_error(404, "No known trained model with model_id [nope]")
    assert describe_error(error) == "404 resource_not_found_exception: No known trained model with model_id [nope]"


def test_the_stats_requests_a_hung_read_sends_stay_within_the_deadline(sim):
    sim.inject_fault(endpoint="stats", latency=30)
    hook = ElasticsearchMLHook(retry=RetryPolicy(attempts=5, initial_wait=0.01, max_wait=0.02))
    started = time.monotonic()
    with pytest.raises(TransientRequestError, match="did not answer within"):
        hook.get_deployment("my-e5", deadline=time.time() + 1.5)
    assert time.monotonic() - started < 1.5 + MIN_ATTEMPT_TIMEOUT + SLACK
    assert 1 <= len(sim.audit.events("fault_injected")) <= 2  # one attempt, or a retry in the time left
