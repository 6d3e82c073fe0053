"""ElasticsearchMLHook: Elasticsearch's trained-model deployment APIs, from an Airflow connection."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any, TypeVar, cast

from airflow.providers.common.compat.sdk import BaseHook
from elasticsearch import AsyncElasticsearch, Elasticsearch

from airflow_esml.connection_form import connection_form_widgets, ui_field_behaviour
from airflow_esml.core import capacity
from airflow_esml.core.capacity import CapacityReport, CapacityUnchecked
from airflow_esml.core.params import DEFAULT_CONN_ID, DEFAULT_REQUEST_TIMEOUT, check_id, cut, shown
from airflow_esml.core.status import AdaptiveAllocations, DeploymentStatus, parse_deployment_status
from airflow_esml.exceptions import DeploymentNotFoundError, EsmlError
from airflow_esml.hooks.connection import client_kwargs
from airflow_esml.hooks.retry import RetryPolicy, attempt_timeout, quiet_transport

ClientT = TypeVar("ClientT", Elasticsearch, AsyncElasticsearch)


def with_compat(client: ClientT) -> ClientT:
    """Apply the Elasticsearch provider's ``[elasticsearch] es_compat_with`` setting to ``client``."""
    from airflow.providers.elasticsearch._compat import apply_compat_with

    # it wraps transport.perform_request without awaiting, so it serves the async client as well
    return cast("ClientT", apply_compat_with(client))  # type: ignore[arg-type]


UNSET: Any = object()


class ElasticsearchMLHook(BaseHook):
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

    # -- deployments ----------------------------------------------------------------------------------

    def get_deployment(self, deployment_id: str, *, deadline: float | None = None) -> DeploymentStatus:
        """The deployment's status from the trained-model stats API.

        :param deployment_id: the deployment (or model) id; an empty one is refused without a request.
        :param deadline: the absolute wall-clock time (epoch seconds) by which the read should end, for a wait:
            each attempt's request timeout is capped to the time left and no retry starts past it.
        :raises DeploymentNotFoundError: no such model or deployment, or the model is not deployed.
        :raises TransientRequestError: the cluster kept failing, or did not answer in time.
        """
        check_id("deployment_id", deployment_id)
        response = self.retry.call(
            f"stats of deployment {shown(deployment_id)}",
            lambda: self._within(self.client, deadline).ml.get_trained_models_stats(model_id=deployment_id),
            deadline=deadline,
        )
        return pick_deployment(deployment_id, response.body)

    async def aget_deployment(self, deployment_id: str, *, deadline: float | None = None) -> DeploymentStatus:
        """Asynchronous :meth:`get_deployment`."""
        check_id("deployment_id", deployment_id)
        client = await self.aclient()
        response = await self.retry.acall(
            f"stats of deployment {shown(deployment_id)}",
            lambda: self._within(client, deadline).ml.get_trained_models_stats(model_id=deployment_id),
            deadline=deadline,
        )
        return pick_deployment(deployment_id, response.body)

    async def aget_deployments(self, deployment_ids: Sequence[str]) -> dict[str, DeploymentStatus | Exception]:
        """The status of several deployments with one stats request; each missing one maps to its error."""
        for deployment_id in deployment_ids:
            check_id("deployment_id", deployment_id)
        client = await self.aclient()
        ids = sorted(set(deployment_ids))
        try:
            response = await self.retry.acall(
                "stats of deployments", client.ml.get_trained_models_stats, model_id=",".join(ids)
            )
        except DeploymentNotFoundError:
            if len(ids) == 1:
                raise
            # an explicit id that does not exist fails the whole request: ask one by one
            results: dict[str, DeploymentStatus | Exception] = {}
            for deployment_id in ids:
                try:
                    results[deployment_id] = await self.aget_deployment(deployment_id)
                except DeploymentNotFoundError as exc:
                    results[deployment_id] = exc
            return results
        body = response.body
        found: dict[str, DeploymentStatus | Exception] = {}
        for deployment_id in ids:
            try:
                found[deployment_id] = pick_deployment(deployment_id, body)
            except DeploymentNotFoundError as exc:
                found[deployment_id] = exc
        return found

    def update_deployment(
        self,
        deployment_id: str,
        *,
        number_of_allocations: int | None = None,
        adaptive_allocations: AdaptiveAllocations | Mapping[str, Any] | None = UNSET,
    ) -> dict[str, Any]:
        """Change the deployment's allocations; returns Elasticsearch's ``assignment``.

        :param number_of_allocations: the new total number of allocations.
        :param adaptive_allocations: new adaptive-allocations settings; None removes them.
        """
        check_id("deployment_id", deployment_id)
        body: dict[str, Any] = {}
        if number_of_allocations is not None:
            body["number_of_allocations"] = number_of_allocations
        if isinstance(adaptive_allocations, AdaptiveAllocations):
            adaptive_allocations = adaptive_allocations.to_dict()
        if adaptive_allocations is not UNSET:
            body["adaptive_allocations"] = adaptive_allocations
        response = self.retry.call(
            f"update of deployment {shown(deployment_id)}",
            self.client.ml.update_trained_model_deployment,
            model_id=deployment_id,
            body=body,
        )
        return dict(response.body.get("assignment", {}))

    def infer(self, deployment_id: str, docs: Sequence[Mapping[str, Any]], *, timeout: str = "60s") -> list[Any]:
        """Run the deployment's model on ``docs``; one result per doc, in order."""
        check_id("deployment_id", deployment_id)
        response = self.retry.call(
            f"inference on deployment {shown(deployment_id)}",
            self.client.ml.infer_trained_model,
            model_id=deployment_id,
            docs=list(docs),
            timeout=timeout,
        )
        return list(response.body["inference_results"])

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

    # -- capacity (see airflow_esml.core.capacity) ---------------------------------------------------------

    def get_ml_nodes(self) -> dict[str, Any]:
        """``GET _nodes``: every node with its roles and attributes (needs the ``monitor`` privilege)."""
        return dict(self.retry.call("nodes info (GET _nodes)", self.client.nodes.info).body)

    def get_ml_info(self) -> dict[str, Any]:
        """``GET _ml/info``: ML defaults and limits, e.g. ``limits.total_ml_processors`` (``monitor_ml``)."""
        return dict(self.retry.call("ML info (GET _ml/info)", self.client.ml.info).body)

    def get_all_deployments(self, page_size: int = 100) -> dict[str, Any]:
        """``GET _ml/trained_models/_stats`` for every model, all pages merged into one response body."""
        entries: list[Any] = []
        start, count = 0, None
        while count is None or start < count:
            body = self.retry.call(
                "stats of all deployments (GET _ml/trained_models/_all/_stats)",
                self.client.ml.get_trained_models_stats,
                model_id="_all",
                from_=start,
                size=page_size,
            ).body
            count = int(body.get("count", 0))
            page = list(body.get("trained_model_stats", []))
            entries.extend(page)
            start += page_size
            if not page:
                break
        return {"count": count or 0, "trained_model_stats": entries}

    def get_ml_autoscaling_settings(self) -> dict[str, Any]:
        """The cluster settings that decide whether ML can autoscale (``xpack.ml.max_lazy_ml_nodes``,
        ``xpack.ml.max_ml_node_size``), defaults included (needs ``monitor``)."""
        return dict(
            self.retry.call(
                "cluster settings (GET _cluster/settings)",
                self.client.cluster.get_settings,
                include_defaults=True,
                flat_settings=True,
                filter_path="*.xpack.ml.max_lazy_ml_nodes,*.xpack.ml.max_ml_node_size",
            ).body
        )

    def get_capacity(
        self, status: DeploymentStatus, autoscaling: bool | None = None
    ) -> CapacityReport | CapacityUnchecked:
        """How many allocations of ``status``'s deployment the ML nodes can hold.

        Reads ``_ml/trained_models/_stats``, ``_nodes`` (``_ml/info`` when ``_nodes`` fails otherwise) and,
        when ``autoscaling`` is None, ``_cluster/settings``. When one of them is refused (403, 404 or 410, see
        :data:`~airflow_esml.core.capacity.UNCHECKABLE_STATUSES`), nothing is checked: the answer is a
        :class:`~airflow_esml.core.capacity.CapacityUnchecked` that names the API, the status and
        Elasticsearch's reason. Other errors are raised.

        :param status: the deployment being scaled (its id and threads per allocation).
        :param autoscaling: whether the cluster autoscales ML nodes; None reads the cluster settings
            (and assumes no autoscaling when they cannot be read for another reason).
        """
        try:
            return self._read_capacity(status, autoscaling)
        except EsmlError as exc:
            if exc.status not in capacity.UNCHECKABLE_STATUSES:
                raise
            return CapacityUnchecked(status.deployment_id, str(exc))

    def _read_capacity(self, status: DeploymentStatus, autoscaling: bool | None) -> CapacityReport:
        used = capacity.processors_used(self.get_all_deployments(), status.deployment_id)
        try:
            nodes: tuple[capacity.MlNode, ...] | None = capacity.parse_ml_nodes(self.get_ml_nodes())
        except EsmlError as exc:
            if exc.status in capacity.UNCHECKABLE_STATUSES:
                raise
            self.log.warning("Cannot read the ML nodes (%s); using the _ml/info processor total", exc)
            nodes = None
        if autoscaling is None:
            autoscaling = self._detect_autoscaling(nodes or ())
        if nodes is not None:
            return capacity.build_report(
                status.deployment_id, status.threads_per_allocation, nodes, used, autoscaling=autoscaling
            )
        total = capacity.total_ml_processors(self.get_ml_info()) or 0
        return capacity.pooled_report(
            status.deployment_id, status.threads_per_allocation, total, sum(used.values()), autoscaling=autoscaling
        )

    def _detect_autoscaling(self, nodes: Sequence[Any]) -> bool:
        try:
            settings = self.get_ml_autoscaling_settings()
        except EsmlError as exc:
            if exc.status in capacity.UNCHECKABLE_STATUSES:
                raise
            self.log.warning(
                "Cannot read the ML autoscaling settings (%s); assuming the cluster does not autoscale "
                "(pass autoscaling=True if it does)",
                exc,
            )
            return False
        return capacity.scaling_possible(settings, nodes)


def pick_deployment(deployment_id: str, body: Mapping[str, Any]) -> DeploymentStatus:
    """The status of ``deployment_id`` from a stats response (which may list several deployments)."""
    entries = body.get("trained_model_stats", [])
    for entry in entries:
        stats = entry.get("deployment_stats")
        if stats and stats.get("deployment_id", stats.get("model_id")) == deployment_id:
            return parse_deployment_status(entry)
    if any(e.get("model_id") == deployment_id for e in entries):
        raise DeploymentNotFoundError(f"{cut(deployment_id)}: the model exists but has no deployment with that id")
    raise DeploymentNotFoundError(f"{cut(deployment_id)}: no such deployment")
