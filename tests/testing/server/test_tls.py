"""Optional TLS with a self-signed CA written to a directory."""

from __future__ import annotations

import os
from pathlib import Path

import elasticsearch
import pytest

from airflow_esml.testing import Simulator
from airflow_esml.testing.server.tls import write_tls_files


def test_https_with_ca_certs(tmp_path: Path, no_stray_threads: None) -> None:
    with Simulator(tls_dir=tmp_path) as sim:
        assert sim.url.startswith("https://127.0.0.1:")
        assert sim.ca_certs == str(tmp_path / "ca.crt")
        with sim.client() as es:
            assert es.info()["tagline"] == "You Know, for Search"
        with elasticsearch.Elasticsearch(sim.url, ca_certs=sim.ca_certs) as es:
            assert es.info().meta.headers["X-Elastic-Product"] == "Elasticsearch"


async def test_https_async(tmp_path: Path) -> None:
    with Simulator(tls_dir=tmp_path) as sim:
        async with sim.async_client() as es:
            assert (await es.info())["tagline"] == "You Know, for Search"


def test_wrong_ca_fails(tmp_path: Path) -> None:
    other = write_tls_files(tmp_path / "other")
    with Simulator(tls_dir=tmp_path / "sim") as sim:
        with (
            elasticsearch.Elasticsearch(sim.url, ca_certs=other.ca_cert, max_retries=0) as es,
            pytest.raises(elasticsearch.SSLError),
        ):
            es.info()
        with (
            elasticsearch.Elasticsearch(sim.url, max_retries=0) as es,  # system CAs only
            pytest.raises(elasticsearch.SSLError),
        ):
            es.info()


def test_ca_is_reused_and_key_is_private(tmp_path: Path) -> None:
    first = write_tls_files(tmp_path)
    ca_pem = Path(first.ca_cert).read_bytes()
    second = write_tls_files(tmp_path)
    assert Path(second.ca_cert).read_bytes() == ca_pem
    assert os.stat(second.server_key).st_mode & 0o077 == 0
    assert os.stat(tmp_path / "ca.key").st_mode & 0o077 == 0


def test_connection_uri_with_tls_and_api_key(tmp_path: Path) -> None:
    from airflow.models.connection import Connection

    with Simulator(tls_dir=tmp_path, api_key="id:key") as sim:
        conn = Connection(conn_id="sim", uri=sim.connection_uri())
        port = int(sim.url.rsplit(":", 1)[1])
        assert (conn.conn_type, conn.host, conn.port, conn.schema) == ("elasticsearch", "127.0.0.1", port, "https")
        assert conn.extra_dejson == {"api_key": "id:key", "ca_certs": sim.ca_certs}
        url = f"{conn.schema}://{conn.host}:{conn.port}"
        with elasticsearch.Elasticsearch(url, **conn.extra_dejson) as es:
            assert es.info()["tagline"] == "You Know, for Search"


def test_connection_uri_with_basic_auth() -> None:
    from airflow.models.connection import Connection

    with Simulator(basic_auth=("elastic", "p@ss:word/x")) as sim:
        conn = Connection(conn_id="sim", uri=sim.connection_uri())
        assert (conn.login, conn.password, conn.schema) == ("elastic", "p@ss:word/x", "http")
        with elasticsearch.Elasticsearch(sim.url, basic_auth=(str(conn.login), str(conn.password))) as es:
            assert es.info()["tagline"] == "You Know, for Search"
