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
from airflow_esml.core.params import DEFAULT_CONN_ID, DEFAULT_REQUEST_TIMEOUT, check_id, shown
from airflow_esml.core.target import (
    DEFAULT_ENDPOINTS,
    Endpoint,
    ServerInfo,
    Target,
    parse_endpoint,
    parse_version,
    resolve_target,
    trained_model_target,
    warm_up_body,
)
from airflow_esml.exceptions import DeploymentNotFoundError, EsmlError
from airflow_esml.hooks.capacity import CapacityMixin
from airflow_esml.hooks.connection import client_kwargs
from airflow_esml.hooks.infer import JSON_HEADERS, InferMixin
from airflow_esml.hooks.parts import ClientT
from airflow_esml.hooks.retry import RetryPolicy, attempt_timeout, describe_error, quiet_transport
from airflow_esml.hooks.stats import StatsMixin, pick_deployment
from airflow_esml.hooks.updates import UpdateMixin


def with_compat(client: ClientT) -> ClientT:
    """Apply the Elasticsearch provider's ``[elasticsearch] es_compat_with`` setting to ``client``."""
    from airflow.providers.elasticsearch._compat import apply_compat_with

    # it wraps transport.perform_request without awaiting, so it serves the async client as well
    return cast("ClientT", apply_compat_with(client))  # type: ignore[arg-type]


#: answers of ``GET _inference/<id>`` that mean "no endpoint to route by": 404 (no such endpoint), and 400, 405 or
#: 410 (no ``_inference`` API: an old version or a proxy) or 403 (the key may not read endpoints)
NO_ENDPOINT_STATUSES = frozenset({400, 403, 404, 405, 410})
#: elasticsearch-py sends ``inference.update`` as PUT from 8.18.0; 8.17.1 and 8.17.2 send POST, which the
#: server refuses (elastic/elasticsearch PR #121048), and older clients have no such method
CLIENT_UPDATE_PUT_SINCE = (8, 18)


def client_sends_put(version: str = elasticsearch.__versionstr__) -> bool:
    """Whether the installed client's ``inference.update`` sends PUT, the method Elasticsearch accepts."""
    parsed = parse_version(version)
    return parsed is not None and parsed[:2] >= CLIENT_UPDATE_PUT_SINCE


class ElasticsearchMLHook(StatsMixin, UpdateMixin, InferMixin, CapacityMixin, BaseHook):
    """Reads and changes Elasticsearch ML trained-model deployments.

    Works with connections of the Elasticsearch provider's ``elasticsearch`` type (host, port, schema as
    the scheme, login and password) and of this provider's ``elasticsearch_ml`` type. Extras:
    ``api_key``, ``cloud_id``, ``ca_certs``, ``verify_certs`` (default true) and ``request_timeout``.
    Transient failures (429, 502-504, resets, timeouts) are retried with exponential backoff.

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

    def close(self) -> None:
        if "client" in self.__dict__:
            self.client.close()
            del self.__dict__["client"]

    async def aclose(self) -> None:
        if self._async_client is not None:
            await self._async_client.close()
            self._async_client = None

    # -- what an id names (see airflow_esml.core.target) ------------------------------------------------

    def server_info(self, *, deadline: float | None = None) -> ServerInfo:
        """The cluster's version and flavour from ``GET /``, read once.

        :param deadline: the absolute wall-clock time by which the read should end (see :meth:`get_deployment`).
        """
        if self._server is None:
            body = self.retry.call(
                "cluster info", lambda: self._within(self.client, deadline).info(), deadline=deadline
            ).body
            self._server = ServerInfo.from_info(body)
        return self._server

    def target(self, target_id: str, *, deadline: float | None = None) -> Target:
        """What ``target_id`` names (a trained-model deployment or an inference endpoint), found once per hook.

        Asks ``GET _inference/<id>``; an endpoint attached to another deployment also asks for that deployment's
        endpoint, and a default endpoint whether the stats API lists its deployment. Without an ``_inference``
        API (or the privilege to read it) the id is taken as a trained-model deployment.

        :param target_id: a deployment id or an inference id; an empty one is refused without a request.
        :param deadline: the absolute wall-clock time by which the reads should end (see :meth:`get_deployment`).
        :raises InvalidParameterError: the id names an endpoint of a service outside the cluster.
        """
        check_id("deployment_id", target_id)
        found = self._targets.get(target_id)
        if found is not None:
            return found
        endpoint = self._get_endpoint(target_id, deadline)
        if endpoint is None:
            target = trained_model_target(target_id)
        else:
            owner = deployed = None
            if endpoint.in_cluster and endpoint.ml_deployment_id != target_id:
                owner = self._get_endpoint(endpoint.ml_deployment_id, deadline)
            elif target_id in DEFAULT_ENDPOINTS and endpoint.in_cluster:
                deployed = self._has_deployment(target_id, deadline)
            server = self.server_info(deadline=deadline)
            target = resolve_target(target_id, endpoint, server, owner=owner, deployed=deployed)
            self.log.info("%s: %s", target_id, target.describe())
        self._targets[target_id] = target
        return target

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

    def _get_endpoint(self, inference_id: str, deadline: float | None) -> Endpoint | None:
        """The endpoint ``GET _inference/<id>`` returns, or None (see :data:`NO_ENDPOINT_STATUSES`)."""
        answer = self._keeping(
            f"inference endpoint lookup of {shown(inference_id)}",
            lambda: self._within(self.client, deadline).perform_request(
                "GET", f"/_inference/{quote(inference_id, safe='')}", headers={"accept": "application/json"}
            ),
            NO_ENDPOINT_STATUSES,
            deadline,
        )
        if isinstance(answer, elasticsearch.ApiError):
            if answer.meta.status != 404:
                self.log.debug(
                    "%s: cannot read inference endpoints (%s); taking it as a trained-model deployment",
                    inference_id,
                    describe_error(answer),
                )
            return None
        return parse_endpoint(answer.body, inference_id)

    def _has_deployment(self, deployment_id: str, deadline: float | None) -> bool:
        """Whether the stats API lists a deployment with this id."""
        try:
            pick_deployment(deployment_id, self._read_stats(deployment_id, deadline))
        except DeploymentNotFoundError:
            return False
        return True

    def ensure_deployed(self, target_id: str, *, timeout: float) -> Target:
        """Deploy a default inference endpoint that has no deployment yet, the way Elasticsearch does at its
        first use: one small inference call (``POST _inference/<task_type>/<id>``), which starts the deployment
        and waits for it; any other target is returned as it is.

        :param target_id: a deployment id or an inference id.
        :param timeout: seconds the inference call may take (Elasticsearch's ``timeout`` of the request).
        :raises DeploymentNotFoundError: the call ended and the deployment is still not listed.
        """
        target = self.target(target_id)
        if target.deployed:
            return target
        assert target.endpoint_id is not None and target.endpoint_task_type is not None
        self.log.info(
            "%s: default inference endpoint with no deployment yet; deploying it with one inference call, as "
            "Elasticsearch does at its first use (up to %.0fs)",
            target_id,
            timeout,
        )
        self.infer_endpoint(
            target.endpoint_id, target.endpoint_task_type, warm_up_body(target.endpoint_task_type), timeout=timeout
        )
        del self._targets[target_id]
        target = self.target(target_id)
        if not target.deployed:
            raise DeploymentNotFoundError(
                f"{target_id}: the inference call answered, but the stats API still lists no deployment"
            )
        self.log.info("%s: deployed", target_id)
        return target

    # how the installed client sends an inference endpoint's update (:func:`client_sends_put`) is a matter of the
    # client: the update itself is in hooks/updates.py
    def _send_endpoint_update(self, inference_id: str, task_type: str, body: Mapping[str, Any]) -> Any:
        if client_sends_put():
            return self.client.inference.update(inference_id=inference_id, task_type=task_type, inference_config=body)
        path = f"/_inference/{quote(task_type, safe='')}/{quote(inference_id, safe='')}/_update"
        return self.client.perform_request("PUT", path, headers=JSON_HEADERS, body=dict(body))

    def is_serverless(self) -> bool:
        """Whether the cluster is an Elastic Cloud Serverless project: ``GET /`` reports
        ``version.build_flavor: "serverless"`` (read once per hook, with :meth:`server_info`).

        There adaptive allocations are always on and ``_ml/info``, ``_nodes`` and ``_cluster/settings`` answer
        410; see https://www.elastic.co/docs/deploy-manage/deploy/elastic-cloud/differences-from-other-elasticsearch-offerings.
        ``GET /`` needs the ``monitor`` privilege: when it is refused (403), the cluster is taken as stateful (on
        Serverless a count then still becomes a raised adaptive minimum by default, and the capacity check
        records the 410 as "not checked").
        """
        if self._serverless is None:
            try:
                self._serverless = self.server_info().serverless
            except EsmlError as exc:
                if exc.status != 403:
                    raise
                self.log.warning("Cannot read GET / (%s); taking the cluster as stateful, not Serverless", exc)
                self._serverless = False
        return self._serverless

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
