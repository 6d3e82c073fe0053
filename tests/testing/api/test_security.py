"""``POST _security/api_key``: keys with role descriptors, limited by their creator, refused without the
privilege to create keys, and 8.13's unknown inference privileges."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import elasticsearch
import pytest

from airflow_esml.testing import Simulator

USER = ("elastic", "changeme-please")
KEY_MAKER = "maker:maker-secret"
#: what an 8.x client sends (the 9.x client's compatible-with=9 is refused by 8.x)
COMPAT_8 = {
    "accept": "application/vnd.elasticsearch+json; compatible-with=8",
    "content-type": "application/vnd.elasticsearch+json; compatible-with=8",
}


def create_8x(es: elasticsearch.Elasticsearch, body: dict) -> dict:
    """``POST _security/api_key`` as an 8.x client sends it."""
    return dict(es.perform_request("POST", "/_security/api_key", body=body, headers=COMPAT_8).body)


@pytest.fixture
def secured() -> Iterator[Simulator]:
    with Simulator(basic_auth=USER, api_keys={KEY_MAKER: ["manage_own_api_key", "monitor_ml"]}, seed=2) as sim:
        yield sim


def test_a_created_key_has_its_role_descriptors(secured: Simulator) -> None:
    with elasticsearch.Elasticsearch(secured.url, basic_auth=USER) as es:
        created = es.security.create_api_key(
            name="esml", expiration="1d", role_descriptors={"esml": {"cluster": ["monitor_ml", "manage_ml"]}}
        ).body
    assert set(created) == {"id", "name", "expiration", "api_key", "encoded"} and created["name"] == "esml"
    assert base64.b64decode(created["encoded"]).decode() == f"{created['id']}:{created['api_key']}"
    with elasticsearch.Elasticsearch(secured.url, api_key=created["encoded"]) as es:
        assert es.ml.info()["limits"]["total_ml_processors"] == 8
        with pytest.raises(elasticsearch.AuthorizationException) as raised:
            es.nodes.info()
    assert f"is unauthorized for API key id [{created['id']}] of user [elastic]" in str(raised.value)
    with elasticsearch.Elasticsearch(secured.url, api_key=(created["id"], created["api_key"])) as es:
        assert es.ml.get_trained_models_stats(model_id="my-e5")["count"] == 1


def test_an_api_key_creates_only_empty_derived_keys(secured: Simulator) -> None:
    with secured.client(api_key=KEY_MAKER) as es:
        with pytest.raises(elasticsearch.BadRequestError) as raised:
            es.security.create_api_key(name="child", role_descriptors={"r": {"cluster": ["monitor"]}})
        assert raised.value.message == "illegal_argument_exception"
        assert "creating derived api keys requires an explicit role descriptor that is empty" in str(raised.value)
        child = es.security.create_api_key(name="child", role_descriptors={"none": {}}).body
    with elasticsearch.Elasticsearch(secured.url, api_key=child["encoded"]) as es:
        with pytest.raises(elasticsearch.AuthorizationException):
            es.ml.info()


def test_creating_a_key_needs_an_api_key_privilege() -> None:
    with Simulator(api_keys={"k:v": ["manage_ml"]}) as sim, sim.client() as es:
        with pytest.raises(elasticsearch.AuthorizationException) as raised:
            es.security.create_api_key(name="x")
    assert str(raised.value.body["error"]["reason"]).endswith(
        "granted by the cluster privileges [manage_own_api_key,manage_api_key,manage_security,all]"
    )


def test_8_13_refuses_manage_inference_in_role_descriptors() -> None:
    with Simulator(es_version="8.13.4", basic_auth=USER) as sim, sim.client() as es:
        with pytest.raises(elasticsearch.BadRequestError) as raised:
            create_8x(es, {"name": "x", "role_descriptors": {"r": {"cluster": ["manage_inference"]}}})
        reason = raised.value.body["error"]["reason"]
        assert raised.value.message == "action_request_validation_exception"
        assert reason.startswith(
            "Validation Failed: 1: unknown cluster privilege [manage_inference]. a privilege must be either one of "
            "the predefined cluster privilege names [monitor_ml,manage_ml,"
        )
        assert reason.endswith("] or a pattern over one of the available cluster actions;")
        assert create_8x(es, {"name": "y", "role_descriptors": {"r": {"cluster": ["monitor"]}}})["id"]
    with Simulator(es_version="8.14.0", basic_auth=USER) as newer, newer.client() as es:
        assert create_8x(es, {"name": "x", "role_descriptors": {"r": {"cluster": ["manage_inference"]}}})["id"]


def test_a_name_is_required(secured: Simulator) -> None:
    with elasticsearch.Elasticsearch(secured.url, basic_auth=USER) as es:
        with pytest.raises(elasticsearch.BadRequestError, match="api key name is required"):
            es.perform_request("POST", "/_security/api_key", body={}, headers={"content-type": "application/json"})
