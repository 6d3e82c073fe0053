"""What every task of the provider shares: the hook of its ``elasticsearch_conn_id``."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_esml.hooks.ml import ElasticsearchMLHook


class ElasticsearchMLTaskMixin:
    """The hook of a task that talks to the cluster through ``elasticsearch_conn_id``, built when first used.

    Building it also quiets the client's per-request INFO lines (:func:`~airflow_esml.hooks.retry.quiet_transport`).
    """

    elasticsearch_conn_id: str

    @cached_property
    def hook(self) -> ElasticsearchMLHook:
        from airflow_esml.hooks.ml import ElasticsearchMLHook  # loads the elasticsearch client
        from airflow_esml.hooks.retry import quiet_transport

        quiet_transport()  # the task log shows the provider's lines, not one per HTTP request
        return ElasticsearchMLHook(self.elasticsearch_conn_id)
