"""The HTTP layer through the real elasticsearch client: product header, compat media types, routing errors."""

from __future__ import annotations

import http.client
import json

import elasticsearch
import pytest

from airflow_esml.testing import Simulator
from airflow_esml.testing.protocol import SimRequest, SimResponse
from airflow_esml.testing.server.routing import PlainError, Router, endpoint_name
from tests.testing.conftest import EsTarget


def _raw(sim: Simulator, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None):
    host, port = sim.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_info_has_product_header_and_version(es_target: EsTarget) -> None:
    with es_target.client() as es:
        resp = es.info()
    assert resp.meta.headers["X-Elastic-Product"] == "Elasticsearch"
    assert resp["tagline"] == "You Know, for Search"
    assert resp["version"]["build_flavor"] == "default"
    if not es_target.is_real:
        assert resp["version"]["number"] == "9.5.1"


def test_compat_content_type_is_echoed(simulator: Simulator) -> None:
    with simulator.client() as es:
        resp = es.info()
    assert resp.meta.headers["Content-Type"] == "application/vnd.elasticsearch+json;compatible-with=9"
    status, headers, _ = _raw(simulator, "GET", "/")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Elastic-Product"] == "Elasticsearch"


def test_8x_server_refuses_compatible_with_9() -> None:
    with Simulator(es_version="8.19.3") as sim, sim.client() as es:
        with pytest.raises(elasticsearch.BadRequestError) as info:
            es.info()
        err = info.value
        assert err.status_code == 400
        assert err.message == "media_type_header_exception"
        assert err.body["error"]["reason"] == "Invalid media-type value on headers [Accept, Content-Type]"
        assert err.body["error"]["caused_by"]["reason"].startswith(
            "Accept version must be either version 8 or 7, but found 9. Accept=application/vnd.elasticsearch+json"
        )
        # an 8.x client (compatible-with=8) is fine
        status, headers, body = _raw(
            sim, "GET", "/", {"Accept": "application/vnd.elasticsearch+json; compatible-with=8"}
        )
        assert status == 200
        assert json.loads(body)["version"]["number"] == "8.19.3"
        assert headers["Content-Type"] == "application/vnd.elasticsearch+json;compatible-with=8"


def test_9x_server_accepts_8_and_refuses_7(simulator: Simulator) -> None:
    accept8 = {"Accept": "application/vnd.elasticsearch+json; compatible-with=8"}
    assert _raw(simulator, "GET", "/", accept8)[0] == 200
    accept7 = {"Accept": "application/vnd.elasticsearch+json; compatible-with=7"}
    status, _, body = _raw(simulator, "GET", "/", accept7)
    assert status == 400
    assert "must be either version 9 or 8, but found 7" in json.loads(body)["error"]["caused_by"]["reason"]


def test_unknown_uri_and_wrong_method(simulator: Simulator) -> None:
    with simulator.client() as es:
        with pytest.raises(elasticsearch.BadRequestError) as info:
            es.perform_request("GET", "/_nope/a/b/c")
        assert info.value.body == {"error": "no handler found for uri [/_nope/a/b/c] and method [GET]"}
    status, headers, body = _raw(simulator, "POST", "/")
    assert status == 405
    assert headers["Allow"] == "GET,HEAD"
    assert json.loads(body)["error"] == "Incorrect HTTP method for uri [/] and method [POST], allowed: [GET, HEAD]"


def _noop(request: SimRequest) -> SimResponse:
    return SimResponse(200, None)


def test_router_prefers_literal_segments() -> None:
    router = Router()
    router.add("GET", "/{index}/_doc/{id}", _noop, name="param")
    router.add("GET", "/_ml/_doc/{id}", _noop, name="literal")
    route, params = router.match("GET", "/_ml/_doc/a%2Fb", "/_ml/_doc/a%2Fb")
    assert route.name == "literal"
    assert params == {"id": "a/b"}
    assert router.match("GET", "/x/_doc/1", "/x/_doc/1")[1] == {"index": "x", "id": "1"}


def test_endpoint_names() -> None:
    assert endpoint_name("POST", "/_ml/trained_models/{model_id}/deployment/_start") == "start"
    assert endpoint_name("POST", "/_ml/trained_models/{model_id}/deployment/_update") == "update"
    assert endpoint_name("GET", "/_ml/trained_models/{model_id}/_stats") == "stats"
    assert endpoint_name("GET", "/_ml/trained_models/{model_id}") == "models"
    assert endpoint_name("GET", "/") == "info"
    assert endpoint_name("GET", "/_ml/info") == "ml_info"
    assert endpoint_name("GET", "/_nodes/{node_id}") == "nodes"


def test_unhandled_exception_is_500_without_traceback(simulator: Simulator) -> None:
    def boom(request: SimRequest) -> SimResponse:
        raise RuntimeError("secret internals")

    server = simulator._server
    assert server is not None
    server.app.router.add("GET", "/_boom", boom)
    status, headers, body = _raw(simulator, "GET", "/_boom")
    assert status == 500
    assert headers["X-Elastic-Product"] == "Elasticsearch"
    payload = json.loads(body)
    assert payload["status"] == 500
    assert payload["error"]["root_cause"][0]["type"] == "exception"
    assert b"secret internals" not in body and b"Traceback" not in body


def test_requests_are_audited(simulator: Simulator) -> None:
    with simulator.client() as es:
        es.info()
    events = simulator.audit.events("request", endpoint="info")
    assert len(events) == 1
    data = events[0].data
    assert (data["method"], data["path"], data["status"]) == ("GET", "/", 200)
    assert data["duration"] >= 0
    assert data["opaque_id"] is None
    assert "authorization" not in json.dumps(dict(data)).lower()


def test_requests_are_audited_with_the_clients_opaque_id(simulator: Simulator) -> None:
    with simulator.client() as es:
        es.options(opaque_id="triggerer-2").info()
    (event,) = simulator.audit.events("request", endpoint="info")
    assert event.data["opaque_id"] == "triggerer-2"


async def test_async_client_info(es_target: EsTarget) -> None:
    async with es_target.async_client() as es:
        resp = await es.info()
    assert resp.meta.headers["X-Elastic-Product"] == "Elasticsearch"
    assert resp["tagline"] == "You Know, for Search"


def test_stop_joins_every_thread(no_stray_threads: None) -> None:
    sim = Simulator(load_seconds=0.01).start()
    es = sim.client()
    es.info()  # leaves an idle keep-alive connection in the client's pool
    sim.stop()
    es.close()


def test_the_most_literal_path_decides_the_method_as_in_the_path_trie() -> None:
    def ok(request: SimRequest) -> SimResponse:
        return SimResponse(200, None)

    router = Router()
    router.add("POST", "/_inference/{task_type}/{inference_id}", ok, name="infer")
    router.add("PUT", "/_inference/{inference_id}/_update", ok, name="update")
    route, params = router.match("PUT", "/_inference/ep/_update", "/_inference/ep/_update")
    assert (route.name, params) == ("update", {"inference_id": "ep"})
    assert router.match("POST", "/_inference/text_embedding/ep", "/x")[0].name == "infer"
    with pytest.raises(PlainError) as wrong:
        router.match("POST", "/_inference/ep/_update", "/_inference/ep/_update")
    assert (wrong.value.status, wrong.value.body["error"]) == (
        405,
        "Incorrect HTTP method for uri [/_inference/ep/_update] and method [POST], allowed: [PUT]",
    )


def test_a_request_line_over_4_kb_is_refused_as_elasticsearch_does():
    from airflow_esml.testing import Simulator

    with Simulator() as sim, sim.client() as es:
        ids = ",".join(f"model-{i:04d}" for i in range(400))  # about 4 KB of ids
        with pytest.raises(elasticsearch.BadRequestError) as err:
            es.ml.get_trained_models_stats(model_id=ids)
        assert err.value.error == "too_long_http_line_exception"
        assert err.value.info["error"]["reason"] == "An HTTP line is larger than 4096 bytes."
        with pytest.raises(elasticsearch.NotFoundError):  # 3 KB fit: the models are merely unknown
            es.ml.get_trained_models_stats(model_id=ids[:3000].rsplit(",", 1)[0])
