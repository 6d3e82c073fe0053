"""Optional API-key and basic authentication: 401 security_exception with ES's messages."""

from __future__ import annotations

import base64
import http.client
import json
import logging
from collections.abc import Iterator

import elasticsearch
import pytest

from airflow_esml.testing import Simulator

API_KEY = "sim-id:sim-secret-value"


@pytest.fixture
def secured() -> Iterator[Simulator]:
    sim = Simulator(api_key=API_KEY, basic_auth=("elastic", "changeme-please"))
    sim.start()
    yield sim
    sim.stop()


def test_configured_client_authenticates(secured: Simulator) -> None:
    with secured.client() as es:
        assert es.info()["tagline"] == "You Know, for Search"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"api_key": API_KEY},
        {"api_key": ("sim-id", "sim-secret-value")},
        {"api_key": base64.b64encode(API_KEY.encode()).decode()},
        {"basic_auth": ("elastic", "changeme-please")},
    ],
)
def test_accepted_credential_forms(secured: Simulator, kwargs: dict[str, object]) -> None:
    with elasticsearch.Elasticsearch(secured.url, **kwargs) as es:  # type: ignore[arg-type]
        assert es.info()["cluster_name"] == "esml-simulator"


def test_missing_credentials(secured: Simulator) -> None:
    with (
        elasticsearch.Elasticsearch(secured.url) as es,
        pytest.raises(elasticsearch.AuthenticationException) as info,
    ):
        es.info()
    err = info.value
    assert err.status_code == 401
    assert err.message == "security_exception"
    assert err.body["error"]["reason"] == "missing authentication credentials for REST request [/]"
    assert (
        "ApiKey" in err.meta.headers["WWW-Authenticate"] or "ApiKey" in err.body["error"]["header"]["WWW-Authenticate"]
    )


def test_wrong_api_key(secured: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with (
        elasticsearch.Elasticsearch(secured.url, api_key="wrong-key-123") as es,
        pytest.raises(elasticsearch.AuthenticationException) as info,
    ):
        es.info()
    assert info.value.body["error"]["reason"] == (
        "unable to authenticate with provided credentials and anonymous access is not allowed for this request"
    )
    assert "wrong-key-123" not in str(info.value.body)
    assert "wrong-key-123" not in caplog.text and "sim-secret-value" not in caplog.text


def test_wrong_password(secured: Simulator) -> None:
    with (
        elasticsearch.Elasticsearch(secured.url, basic_auth=("elastic", "nope-nope")) as es,
        pytest.raises(elasticsearch.AuthenticationException) as info,
    ):
        es.search(index="x")
    reason = info.value.body["error"]["reason"]
    assert reason == "unable to authenticate user [elastic] for REST request [/x/_search]"
    assert "nope-nope" not in json.dumps(info.value.body)


def test_401_carries_www_authenticate_header(secured: Simulator) -> None:
    host, port = secured.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", "/_sim/audit")
        resp = conn.getresponse()
        resp.read()
        values = resp.headers.get_all("WWW-Authenticate")
    finally:
        conn.close()
    assert resp.status == 401  # /_sim/ control endpoints need the same credentials
    assert values is not None and "ApiKey" in values
    assert resp.headers["X-Elastic-Product"] == "Elasticsearch"


def test_audit_never_records_credentials(secured: Simulator) -> None:
    with secured.client() as es:
        es.info()
    with (
        elasticsearch.Elasticsearch(secured.url, api_key="wrong-key-123") as es,
        pytest.raises(elasticsearch.AuthenticationException),
    ):
        es.info()
    dumped = json.dumps([dict(e.data) for e in secured.audit.events()], default=str)
    assert "sim-secret-value" not in dumped and "wrong-key-123" not in dumped
    assert [e.data["status"] for e in secured.audit.events("request")] == [200, 401]


async def test_async_client_auth(secured: Simulator) -> None:
    async with secured.async_client() as es:
        assert (await es.info())["tagline"] == "You Know, for Search"
    async with elasticsearch.AsyncElasticsearch(secured.url) as es:
        with pytest.raises(elasticsearch.AuthenticationException):
            await es.info()
