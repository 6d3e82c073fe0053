from __future__ import annotations

from types import SimpleNamespace

import pytest

from airflow_esml.exceptions import InvalidParameterError
from airflow_esml.hooks.connection import client_kwargs


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
