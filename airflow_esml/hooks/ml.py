"""ElasticsearchMLHook: Elasticsearch's trained-model deployment APIs, from an Airflow connection."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any, cast
from urllib.parse import quote

import elasticsearch
from airflow.providers.common.compat.sdk import BaseHook
from elasticsearch import AsyncElasticsearch, Elasticsearch

from airflow_esml.connection_form import connection_form_widgets, ui_field_behaviour
from airflow_esml.core.params import DEFAULT_CONN_ID, DEFAULT_REQUEST_TIMEOUT
from airflow_esml.core.target import ServerInfo, Target, parse_version
from airflow_esml.hooks.capacity import CapacityMixin
from airflow_esml.hooks.connection import client_kwargs
from airflow_esml.hooks.infer import JSON_HEADERS, InferMixin
from airflow_esml.hooks.parts import ClientT
from airflow_esml.hooks.retry import RetryPolicy, attempt_timeout, quiet_transport
from airflow_esml.hooks.stats import StatsMixin
from airflow_esml.hooks.targets import TargetMixin
from airflow_esml.hooks.updates import UpdateMixin


def with_compat(client: ClientT) -> ClientT:
    """Apply the Elasticsearch provider's ``[elasticsearch] es_compat_with`` setting to ``client``."""
    from airflow.providers.elasticsearch._compat import apply_compat_with

    # it wraps transport.perform_request without awaiting, so it serves the async client as well
    return cast("ClientT", apply_compat_with(client))  # type: ignore[arg-type]


#: elasticsearch-py sends ``inference.update`` as PUT from 8.18.0; 8.17.1 and 8.17.2 send POST, which the
#: server refuses (elastic/elasticsearch PR #121048), and older clients have no such method
CLIENT_UPDATE_PUT_SINCE = (8, 18)


def client_sends_put(version: str = elasticsearch.__versionstr__) -> bool:
    """Whether the installed client's ``inference.update`` sends PUT, the method Elasticsearch accepts."""
    parsed = parse_version(version)
    return parsed is not None and parsed[:2] >= CLIENT_UPDATE_PUT_SINCE


class ElasticsearchMLHook(TargetMixin, StatsMixin, UpdateMixin, InferMixin, CapacityMixin, BaseHook):
    """Reads and changes Elasticsearch ML trained-model deployments.

    Works with connections of the Elasticsearch provider's ``elasticsearch`` type (host, port, schema as
    the scheme, login and password) and of this provider's ``elasticsearch_ml`` type. Extras:
    ``api_key``, ``cloud_id``, ``ca_certs``, ``verify_certs`` (default true) and ``request_timeout``.
    Transient failures (429, 502-504, resets, timeouts) are retried with exponential backoff.

    This class holds the connection, the clients and the request helpers; the calls come by role from the
    mixins beside it: what an id names (``target``, ``ensure_deployed``, ``server_info``, ``is_serverless``:
    ``targets.py``), stats (``get_deployment``, ``aget_deployment``, ``aget_deployments``: ``stats.py``),
    ``update_deployment`` (``updates.py``), ``infer`` and ``infer_endpoint`` (``infer.py``), and
    ``get_capacity`` with the reads behind it (``capacity.py``).

    :param elasticsearch_conn_id: the Airflow connection to use.
    :param retry: how transient failures are retried.
    """

    conn_name_attr = "elasticsearch_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "elasticsearch_ml"
    hook_name = "Elasticsearch ML"
    default_retry = RetryPolicy()

    def __init__(self, elasticsearch_conn_id: str = default_conn_name, retry: RetryPolicy | None = None) -> None:
        super().__init__()
        self.elasticsearch_conn_id = elasticsearch_conn_id
        self.retry = retry or self.default_retry
        self._async_client: AsyncElasticsearch | None = None
        self._targets: dict[str, Target] = {}
        self._server: ServerInfo | None = None
        self._serverless: bool | None = None
        #: the connection's request timeout (seconds), known once a client is built
        self.request_timeout = DEFAULT_REQUEST_TIMEOUT

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Labels and placeholders of the connection form (Airflow 3.1; 3.2+ reads the provider info)."""
        return ui_field_behaviour()

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The typed extra fields of the connection form (Airflow 3.1; 3.2+ reads ``conn-fields``)."""
        return connection_form_widgets()

    # -- clients --------------------------------------------------------------------------------------

    def _client_kwargs(self, conn: Any, extras: Mapping[str, Any]) -> dict[str, Any]:
        kwargs = client_kwargs(conn, extras)
        quiet_transport()  # task logs show the provider's lines, not the transport's one per request
        self.request_timeout = float(kwargs["request_timeout"])
        if not kwargs["verify_certs"]:
            self.log.warning(
                "Connection %r has verify_certs=false: TLS certificates are NOT verified",
                self.elasticsearch_conn_id,
            )
        return kwargs

    @cached_property
    def connection(self) -> Any:
        """The Airflow connection, looked up once."""
        return self.get_connection(self.elasticsearch_conn_id)

    @property
    def kibana_url(self) -> str | None:
        """The connection's ``kibana_url`` extra, for links to Kibana (None when not set)."""
        return self.connection.extra_dejson.get("kibana_url") or None

    @cached_property
    def client(self) -> Elasticsearch:
        """A synchronous client, for tasks."""
        return with_compat(Elasticsearch(**self._client_kwargs(self.connection, self.connection.extra_dejson)))

    async def aclient(self) -> AsyncElasticsearch:
        """An asynchronous client, for triggers; the connection is looked up without blocking the loop."""
        if self._async_client is None:
            from airflow.providers.common.compat.connection import (
                get_async_connection,
                get_async_extra_dejson,
            )

            conn = await get_async_connection(self.elasticsearch_conn_id, hook=self)
            extras = await get_async_extra_dejson(conn)
            self._async_client = with_compat(AsyncElasticsearch(**self._client_kwargs(conn, extras)))
        return self._async_client

    def _within(self, client: ClientT, deadline: float | None) -> ClientT:
        """``client``, or for a call that must end by ``deadline`` a copy (sharing its connection pool) whose
        request timeout is the time left (:func:`~airflow_esml.hooks.retry.attempt_timeout`)."""
        if deadline is None:
            return client
        return client.options(request_timeout=attempt_timeout(deadline, self.request_timeout))

    def _keeping(
        self, what: str, fn: Callable[[], Any], statuses: frozenset[int], deadline: float | None = None
    ) -> Any:
        """``fn()`` through the retry policy, with an Elasticsearch error whose status is in ``statuses`` returned
        (for the caller to read) instead of raised."""

        def attempt() -> Any:
            try:
                return fn()
            except elasticsearch.ApiError as exc:
                if exc.meta.status in statuses:
                    return exc
                raise

        return self.retry.call(what, attempt, deadline=deadline)

    def close(self) -> None:
        if "client" in self.__dict__:
            self.client.close()
            del self.__dict__["client"]

    async def aclose(self) -> None:
        if self._async_client is not None:
            await self._async_client.close()
            self._async_client = None

    # how the installed client sends an inference endpoint's update (:func:`client_sends_put`) is a matter of the
    # client: the update itself is in hooks/updates.py
    def _send_endpoint_update(self, inference_id: str, task_type: str, body: Mapping[str, Any]) -> Any:
        if client_sends_put():
            return self.client.inference.update(inference_id=inference_id, task_type=task_type, inference_config=body)
        path = f"/_inference/{quote(task_type, safe='')}/{quote(inference_id, safe='')}/_update"
        return self.client.perform_request("PUT", path, headers=JSON_HEADERS, body=dict(body))

    def test_connection(self) -> tuple[bool, str]:
        """Connect and read the cluster's version (used by the Airflow UI's connection test)."""
        try:
            info = self.retry.call("cluster info", self.client.info).body
        except Exception as exc:
            return False, str(exc)
        return (
            True,
            f"Connected to Elasticsearch {info['version']['number']} ({info.get('cluster_name', '')})",
        )
