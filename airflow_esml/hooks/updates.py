"""The updates of :class:`~airflow_esml.hooks.ml.ElasticsearchMLHook`: a deployment's allocations changed through
the API that owns it (``_ml/trained_models/<id>/deployment/_update``, or ``_inference/<task_type>/<id>/_update``
for a deployment an inference endpoint created; see :mod:`airflow_esml.core.target`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import elasticsearch

from airflow_esml.core.params import shown
from airflow_esml.core.status import AdaptiveAllocations
from airflow_esml.core.target import ServerInfo, Target, inference_update_body, other_semantics, ownership_conflict
from airflow_esml.exceptions import DeploymentOwnershipError
from airflow_esml.hooks.parts import HookPart
from airflow_esml.hooks.retry import translate

UNSET: Any = object()


class UpdateMixin(HookPart):
    """Changes a deployment's allocations."""

    if TYPE_CHECKING:

        def target(self, target_id: str, *, deadline: float | None = None) -> Target: ...

        def server_info(self, *, deadline: float | None = None) -> ServerInfo: ...

        def _send_endpoint_update(self, inference_id: str, task_type: str, body: Mapping[str, Any]) -> Any: ...

    def update_deployment(
        self,
        deployment_id: str,
        *,
        number_of_allocations: int | None = None,
        adaptive_allocations: AdaptiveAllocations | Mapping[str, Any] | None = UNSET,
    ) -> dict[str, Any]:
        """Change the deployment's allocations through the API that owns it; returns Elasticsearch's answer
        (the ``assignment`` of the trained-models API, the endpoint of the inference API).

        A deployment created by an inference endpoint is changed with ``PUT _inference/<task_type>/<id>/_update``
        where the cluster has that API (8.17+); any other with ``POST _ml/trained_models/<id>/deployment/_update``.

        :param deployment_id: the deployment id, or an inference id.
        :param number_of_allocations: the new total number of allocations.
        :param adaptive_allocations: new adaptive-allocations settings; None removes them.
        :raises DeploymentOwnershipError: Elasticsearch says another API owns the deployment (409).
        """
        target = self.target(deployment_id)
        body: dict[str, Any] = {}
        if number_of_allocations is not None:
            body["number_of_allocations"] = number_of_allocations
        if isinstance(adaptive_allocations, AdaptiveAllocations):
            adaptive_allocations = adaptive_allocations.to_dict()
        if adaptive_allocations is not UNSET:
            body["adaptive_allocations"] = adaptive_allocations
        if target.managed_by == "inference":
            return self._update_endpoint(target, body)
        what = f"update of deployment {shown(target.deployment_id)}"
        self.log.debug("%s: POST _ml/trained_models/%s/deployment/_update %s", deployment_id, target.deployment_id,
                       body)  # fmt: skip
        response = self._owned(
            what,
            target,
            lambda: self.client.ml.update_trained_model_deployment(model_id=target.deployment_id, body=body),
        )
        return dict(response.body.get("assignment", {}))

    def _update_endpoint(self, target: Target, ml_body: Mapping[str, Any]) -> dict[str, Any]:
        """``PUT _inference/<task_type>/<inference_id>/_update`` with the translation of ``ml_body``.

        The body is built for the cluster's version (:attr:`ServerInfo.exclusive_update`); a 400 that says the
        cluster combines the count and the adaptive settings the other way is answered by one resend.
        """
        assert target.inference_id is not None and target.task_type is not None
        inference_id, task_type = target.inference_id, target.task_type
        what = f"update of inference endpoint {shown(inference_id)}"
        exclusive = self.server_info().exclusive_update
        for last in (False, True):
            body = inference_update_body(ml_body, exclusive=exclusive)
            self.log.info("%s: PUT _inference/%s/%s/_update %s", target.id, task_type, inference_id, body)
            send = functools.partial(self._send_endpoint_update, inference_id, task_type, body)
            answer = self._owned(what, target, send, {400})
            if not isinstance(answer, elasticsearch.ApiError):
                return dict(answer.body)
            retry_as = other_semantics(error_text(answer), exclusive=exclusive)
            if retry_as is None or last:
                raise translate(what, answer)
            exclusive = retry_as
        raise AssertionError("unreachable")

    def _owned(
        self, what: str, target: Target, fn: Callable[[], Any], statuses: frozenset[int] | set[int] = frozenset()
    ) -> Any:
        """``fn()`` with Elasticsearch's ownership 409 raised as :class:`DeploymentOwnershipError`, and an error
        whose status is in ``statuses`` returned."""
        answer = self._keeping(what, fn, frozenset({409, *statuses}))
        if isinstance(answer, elasticsearch.ApiError) and answer.meta.status == 409:
            conflict = ownership_conflict(error_text(answer))
            if conflict is None:
                raise translate(what, answer)
            raise DeploymentOwnershipError(conflict.message(what, target.id, target.deployment_id))
        return answer


def error_text(exc: elasticsearch.ApiError) -> str:
    """All of an error's body as text (its reasons uncut), for reading what Elasticsearch says."""
    return str(exc.body) if exc.body else str(exc.message)
