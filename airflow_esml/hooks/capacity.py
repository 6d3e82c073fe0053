"""The capacity reads of :class:`~airflow_esml.hooks.ml.ElasticsearchMLHook`: what the ML nodes can hold.

``_ml/trained_models/_stats``, ``_nodes``, ``_ml/info`` and ``_cluster/settings``, read for
:mod:`airflow_esml.core.ml_nodes`, which parses them, and :mod:`airflow_esml.core.capacity`, which decides; a
refused monitoring API gives a ``CapacityUnchecked``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_esml.core import capacity, ml_nodes
from airflow_esml.core.capacity import CapacityReport, CapacityUnchecked
from airflow_esml.core.status import DeploymentStatus
from airflow_esml.exceptions import EsmlError
from airflow_esml.hooks.parts import HookPart


class CapacityMixin(HookPart):
    """Reads what the ML nodes hold and can hold (see :mod:`airflow_esml.core.capacity`)."""

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
        used = ml_nodes.processors_used(self.get_all_deployments(), status.deployment_id)
        try:
            nodes: tuple[ml_nodes.MlNode, ...] | None = ml_nodes.parse_ml_nodes(self.get_ml_nodes())
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
        total = ml_nodes.total_ml_processors(self.get_ml_info()) or 0
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
        return ml_nodes.scaling_possible(settings, nodes)
