"""What an id names, for :class:`~airflow_esml.hooks.ml.ElasticsearchMLHook`: a trained-model deployment, the
deployment an inference endpoint created, an endpoint attached to a deployment, or a default endpoint not yet
deployed (see :mod:`airflow_esml.core.target`, which decides from the answers read here); and whether the cluster
is Serverless.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import elasticsearch

from airflow_esml.core.params import check_id, shown
from airflow_esml.core.target import (
    DEFAULT_ENDPOINTS,
    Endpoint,
    ServerInfo,
    Target,
    parse_endpoint,
    resolve_target,
    trained_model_target,
    warm_up_body,
)
from airflow_esml.exceptions import DeploymentNotFoundError, EsmlError
from airflow_esml.hooks.parts import HookPart
from airflow_esml.hooks.retry import describe_error
from airflow_esml.hooks.stats import pick_deployment

#: answers of ``GET _inference/<id>`` that mean "no endpoint to route by": 404 (no such endpoint), and 400, 405 or
#: 410 (no ``_inference`` API: an old version or a proxy) or 403 (the key may not read endpoints)
NO_ENDPOINT_STATUSES = frozenset({400, 403, 404, 405, 410})


class TargetMixin(HookPart):
    """Finds what an id names, once per hook."""

    if TYPE_CHECKING:
        _targets: dict[str, Target]
        _server: ServerInfo | None
        _serverless: bool | None

        def _read_stats(self, deployment_id: str, deadline: float | None) -> Mapping[str, Any]: ...

        def infer_endpoint(
            self, inference_id: str, task_type: str, body: Mapping[str, Any], *, timeout: float = 60.0
        ) -> dict[str, Any]: ...

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
