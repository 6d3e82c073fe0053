from __future__ import annotations

import inspect
from types import SimpleNamespace

import elasticsearch
import pytest

from airflow_esml.exceptions import InvalidParameterError
from airflow_esml.hooks.connection import EXTRAS, NOT_PASSED_ON, client_kwargs


def conn(**kw):
    base = {"conn_id": "es", "host": "localhost", "port": 9200, "schema": "http", "login": None, "password": None}
    return SimpleNamespace(**{**base, **kw})


def test_elasticsearch_provider_style_connection_works_unchanged():
    kwargs = client_kwargs(conn(host="es1,https://es2:9243", schema="https", login="elastic", password="pw"), {})
    assert kwargs["hosts"] == ["https://es1:9200", "https://es2:9243"]
    assert kwargs["basic_auth"] == ("elastic", "pw")
    assert kwargs["verify_certs"] is True
    assert kwargs["max_retries"] == 0  # the hook retries with backoff instead


def test_extras_cover_api_key_cloud_id_ca_certs_verify_and_timeout():
    kwargs = client_kwargs(
        conn(login="ignored"),
        {"api_key": "k", "cloud_id": "c:xyz", "ca_certs": "/ca.crt", "verify_certs": "false", "request_timeout": "45"},
    )
    assert kwargs["api_key"] == "k" and "basic_auth" not in kwargs
    assert kwargs["cloud_id"] == "c:xyz" and "hosts" not in kwargs
    assert kwargs["ca_certs"] == "/ca.crt"
    assert kwargs["verify_certs"] is False
    assert kwargs["request_timeout"] == 45.0


def test_a_password_without_login_is_an_api_key():
    assert client_kwargs(conn(password="secret-key"), {})["api_key"] == "secret-key"


@pytest.mark.parametrize(
    ("connection", "extras", "fragment"),
    [
        (conn(), {"use_ssl": True}, "unknown extra field(s) 'use_ssl'"),
        (conn(), {"verify_certs": "maybe"}, "'verify_certs' must be true or false, got 'maybe'"),
        (conn(), {"request_timeout": 0}, "'request_timeout' must be a positive number, got 0"),
        (conn(), {"ca_certs": 5}, "extra 'ca_certs' must be of type str, got int"),
        (conn(host=None), {}, "has no host"),
        (conn(schema="ftp"), {}, "schema must be 'http' or 'https'"),
    ],
)
def test_bad_connections_are_named(connection, extras, fragment):
    with pytest.raises(InvalidParameterError) as excinfo:
        client_kwargs(connection, extras)
    assert fragment in str(excinfo.value)
    assert "'es'" in str(excinfo.value)


def test_errors_never_show_secret_values():
    with pytest.raises(InvalidParameterError) as excinfo:
        client_kwargs(conn(), {"api_key": "TOPSECRET", "apikey": "TOPSECRET2"})
    assert "TOPSECRET" not in str(excinfo.value)


# Every extra the Elasticsearch provider documents for its `elasticsearch` connection type
# (connections/elasticsearch.rst: http_compress and timeout), as JSON and as an AIRFLOW_CONN_* URI gives it.
@pytest.mark.parametrize(
    ("extras", "expected"),
    [
        ({"http_compress": True}, {"http_compress": True}),
        ({"http_compress": "true"}, {"http_compress": True}),
        ({"http_compress": "False"}, {"http_compress": False}),
        ({"timeout": 45}, {"request_timeout": 45.0}),
        ({"timeout": "12.5"}, {"request_timeout": 12.5}),
        ({"timeout": False}, {"request_timeout": 30.0}),  # the provider's documented default: no timeout set
    ],
)
def test_documented_elasticsearch_provider_extras_are_mapped(extras, expected):
    kwargs = client_kwargs(conn(), extras)
    assert {k: kwargs[k] for k in expected} == expected
    if "timeout" in extras:
        assert "timeout" not in kwargs


def test_each_client_extra_builds_a_client_with_that_option():
    extras = {
        "http_compress": "yes",
        "timeout": "7",
        "verify_certs": False,
        "ssl_show_warn": "false",
        "ca_certs": "/etc/ssl/ca.crt",
        "headers": {"x-team": "ml"},
        "opaque_id": "airflow",
        "connections_per_node": "3",
        "fetch_size": 100,
        "field_multi_value_leniency": True,
        "max_retries": 5,
    }
    kwargs = client_kwargs(conn(schema="https"), extras)
    assert kwargs["max_retries"] == 0  # the hook's own retries, whatever the connection says
    client = elasticsearch.Elasticsearch(**kwargs)
    (node,) = client.transport.node_pool.all()
    assert node.config.http_compress is True
    assert node.config.verify_certs is False
    assert node.config.ca_certs == "/etc/ssl/ca.crt"
    assert node.config.connections_per_node == 3
    assert client._request_timeout == 7.0
    assert client._headers["x-team"] == "ml" and client._headers["x-opaque-id"] == "airflow"


@pytest.mark.parametrize(
    ("extras", "arg", "value"),
    [
        ({"api_key": ["id", "key"]}, "api_key", ("id", "key")),
        ({"basic_auth": ["u", "p"]}, "basic_auth", ("u", "p")),
        ({"http_auth": ["u", "p"]}, "basic_auth", ("u", "p")),
        ({"bearer_auth": "token"}, "bearer_auth", "token"),
        ({"cloud_id": "dep:abc"}, "cloud_id", "dep:abc"),
        ({"client_cert": "/c.pem", "client_key": "/k.pem"}, "client_key", "/k.pem"),
        ({"ssl_assert_fingerprint": "AB:CD"}, "ssl_assert_fingerprint", "AB:CD"),
        ({"ssl_assert_hostname": "es.local"}, "ssl_assert_hostname", "es.local"),
        ({"sniff_on_start": "true", "sniff_timeout": "2"}, "sniff_timeout", 2.0),
        ({"sniff_before_requests": True, "min_delay_between_sniffing": 60}, "min_delay_between_sniffing", 60.0),
        ({"sniff_on_node_failure": "1"}, "sniff_on_node_failure", True),
    ],
)
def test_client_extras_reach_the_client_argument(extras, arg, value):
    kwargs = client_kwargs(conn(login="elastic", password="pw"), extras)
    assert kwargs[arg] == value
    if arg in ("api_key", "basic_auth", "bearer_auth"):
        assert [k for k in ("api_key", "basic_auth", "bearer_auth") if k in kwargs] == [arg]


def test_every_client_argument_is_a_parameter_of_the_client():
    params = set(inspect.signature(elasticsearch.Elasticsearch.__init__).parameters)
    params &= set(inspect.signature(elasticsearch.AsyncElasticsearch.__init__).parameters)
    for name, extra in EXTRAS.items():
        if extra.client_arg is None:
            assert name in NOT_PASSED_ON
        else:
            assert extra.client_arg in params, name


def test_empty_and_null_extras_count_as_not_set():
    kwargs = client_kwargs(conn(login="u", password="p"), {"api_key": "", "cloud_id": None, "timeout": None})
    assert kwargs["basic_auth"] == ("u", "p") and "api_key" not in kwargs
    assert kwargs["hosts"] == ["http://localhost:9200"] and kwargs["request_timeout"] == 30.0


@pytest.mark.parametrize(
    ("extras", "fragment"),
    [
        ({"timeout": "soon"}, "'timeout' must be a positive number, got 'soon'"),
        ({"timeout": True}, "'timeout' must be a positive number, got True"),
        ({"timeout": 5, "request_timeout": 5}, "both 'timeout' and 'request_timeout'"),
        ({"http_compress": "sometimes"}, "'http_compress' must be true or false, got 'sometimes'"),
        ({"connections_per_node": "0"}, "'connections_per_node' must be a positive integer, got '0'"),
        ({"headers": {"x": 1}}, "'headers' must be an object of strings"),
        ({"sniff_timeout": "nan"}, "'sniff_timeout' must be a positive number"),
        ({"http_auth": ["u", "p"], "basic_auth": ["u", "p"]}, "both 'http_auth' and 'basic_auth'"),
        ({"node_class": "requests", "use_ssl": True}, "unknown extra field(s) 'node_class', 'use_ssl'"),
    ],
)
def test_bad_client_extras_are_named(extras, fragment):
    with pytest.raises(InvalidParameterError) as excinfo:
        client_kwargs(conn(), extras)
    assert fragment in str(excinfo.value)


def test_a_malformed_credential_is_not_quoted():
    with pytest.raises(InvalidParameterError) as excinfo:
        client_kwargs(conn(), {"api_key": ["id", "SECRET", "more"]})
    assert "SECRET" not in str(excinfo.value)
    assert "'api_key' must be a string or a list of two strings" in str(excinfo.value)
