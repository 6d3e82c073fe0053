"""Operator extra link: the deployment's trained-models page in Kibana."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.providers.common.compat.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey


class TrainedModelsLink(BaseOperatorLink):
    """Opens Kibana's trained-models page filtered on the deployment.

    The URL is built during the task from the connection's ``kibana_url`` extra and kept in XCom (Airflow 3
    reads links from XCom, not from the operator); without that extra there is no link.
    """

    name = "Kibana trained models"

    @staticmethod
    def url(kibana_url: str, deployment_id: str) -> str:
        query = quote(f"(trained_models:(queryText:'{deployment_id}'))", safe="():',")
        return f"{kibana_url.rstrip('/')}/app/ml/trained_models?_a={query}"

    @classmethod
    def persist(cls, context: Context | dict[str, Any], kibana_url: str | None, deployment_id: str) -> None:
        ti = context.get("ti")
        if kibana_url and ti is not None:
            ti.xcom_push(key=cls().xcom_key, value=cls.url(kibana_url, deployment_id))

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.providers.common.compat.sdk import XCom

        return XCom.get_value(ti_key=ti_key, key=self.xcom_key) or ""
