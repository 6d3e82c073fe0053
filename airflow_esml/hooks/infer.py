"""The inference calls of :class:`~airflow_esml.hooks.ml.ElasticsearchMLHook`: one request, run on a deployment
(``_infer``) or on an inference endpoint (``_inference``). Batches that keep every allocation busy are in
:mod:`airflow_esml.hooks.inference`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from airflow_esml.core.params import check_id, shown
from airflow_esml.hooks.parts import HookPart

#: seconds a request may take beyond its Elasticsearch ``timeout`` before the client gives up on it
TIMEOUT_MARGIN = 10.0
#: the headers of a request with a JSON body
JSON_HEADERS = {"accept": "application/json", "content-type": "application/json"}


class InferMixin(HookPart):
    """Runs one inference request."""

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

    def infer_endpoint(
        self, inference_id: str, task_type: str, body: Mapping[str, Any], *, timeout: float = 60.0
    ) -> dict[str, Any]:
        """``POST _inference/<task_type>/<inference_id>`` with ``body``; returns Elasticsearch's answer.

        :param timeout: seconds: Elasticsearch's ``timeout`` of the request; the client waits a little longer.
        """
        deadline = time.time() + timeout + TIMEOUT_MARGIN
        path = f"/_inference/{quote(task_type, safe='')}/{quote(inference_id, safe='')}"
        response = self.retry.call(
            f"inference on endpoint {shown(inference_id)}",
            lambda: self.client.options(request_timeout=timeout + TIMEOUT_MARGIN).perform_request(
                "POST", path, params={"timeout": f"{timeout:g}s"}, headers=JSON_HEADERS, body=dict(body)
            ),
            deadline=deadline,
        )
        return dict(response.body)
