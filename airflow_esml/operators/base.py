"""What every task of the provider shares: the hook of its ``elasticsearch_conn_id``."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import conf

from airflow_esml.core.params import INSTALLATION_OPTION, parse_installation_id
from airflow_esml.links import TrainedModelsLink

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_esml.core.target import Target
    from airflow_esml.hooks.ml import ElasticsearchMLHook


class ElasticsearchMLTaskMixin:
    """The hook of a task that talks to the cluster through ``elasticsearch_conn_id``, built when first used."""

    elasticsearch_conn_id: str

    @cached_property
    def hook(self) -> ElasticsearchMLHook:
        from airflow_esml.hooks.ml import ElasticsearchMLHook  # loads the elasticsearch client

        return ElasticsearchMLHook(self.elasticsearch_conn_id)

    def scaled_target(self, deployment_id: str, *, deploy_within: float | None = None) -> Target:
        """What ``deployment_id`` names: a trained-model deployment or an inference endpoint (resolved once per hook).

        :param deployment_id: a deployment id or an inference id.
        :param deploy_within: for a task that scales up: deploy a default inference endpoint that has no deployment
            yet, with one inference call of at most this many seconds (see
            :meth:`~airflow_esml.hooks.ml.ElasticsearchMLHook.ensure_deployed`).
        """
        if deploy_within is None:
            return self.hook.target(deployment_id)
        return self.hook.ensure_deployed(deployment_id, timeout=deploy_within)

    @cached_property
    def installation_id(self) -> str:
        """``[esml] installation_id`` of this Airflow installation ("" when unset), which starts its lease ids."""
        return parse_installation_id(conf.get(*INSTALLATION_OPTION, fallback=""))

    def persist_kibana_link(self, context: Context | dict[str, Any], deployment_id: str) -> None:
        """Keep the "Kibana trained models" link of ``deployment_id`` for this task, when the connection has a
        ``kibana_url`` extra (the operator lists :class:`~airflow_esml.links.TrainedModelsLink` in its
        ``operator_extra_links``).

        :param context: the task's context (its ``ti`` stores the link).
        :param deployment_id: the deployment the link filters on.
        """
        TrainedModelsLink.persist(context, self.hook.kibana_url, deployment_id)
