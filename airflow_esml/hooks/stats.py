"""The stats reads of :class:`~airflow_esml.hooks.ml.ElasticsearchMLHook`: a deployment's status from
``GET _ml/trained_models/<id>/_stats``, for a task (by a deployment or inference id) and, asynchronously, for
the triggerer (by deployment ids, several in one request).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from airflow_esml.core.params import check_id, cut, shown
from airflow_esml.core.status import STATS_MAX_PAGE, DeploymentStatus, fits_one_stats_request, parse_deployment_status
from airflow_esml.core.target import Target
from airflow_esml.exceptions import DeploymentNotFoundError
from airflow_esml.hooks.parts import HookPart


class StatsMixin(HookPart):
    """Reads deployments' status from the trained-model stats API."""

    if TYPE_CHECKING:

        def target(self, target_id: str, *, deadline: float | None = None) -> Target: ...

    def get_deployment(self, deployment_id: str, *, deadline: float | None = None) -> DeploymentStatus:
        """The deployment's status from the trained-model stats API.

        :param deployment_id: the deployment (or model) id, or an inference id (the stats are those of the
            deployment the endpoint uses); an empty one is refused without a request.
        :param deadline: the absolute wall-clock time (epoch seconds) by which the read should end, for a wait:
            each attempt's request timeout is capped to the time left and no retry starts past it.
        :raises DeploymentNotFoundError: no such model or deployment, or the model is not deployed.
        :raises TransientRequestError: the cluster kept failing, or did not answer in time.
        """
        target = self.target(deployment_id, deadline=deadline)
        try:
            return pick_deployment(target.deployment_id, self._read_stats(target.deployment_id, deadline))
        except DeploymentNotFoundError as exc:
            if not target.is_endpoint:
                raise
            if target.lazily_deployed:
                raise DeploymentNotFoundError(
                    f"{target.describe()}: Elasticsearch deploys it at its first inference call; scaling it up "
                    "(UpdateDeploymentOperator, scaled_deployment) deploys it first"
                ) from exc
            raise DeploymentNotFoundError(f"{target.describe()}: {exc}") from exc

    def _read_stats(self, deployment_id: str, deadline: float | None) -> Mapping[str, Any]:
        response = self.retry.call(
            f"stats of deployment {shown(deployment_id)}",
            lambda: self._within(self.client, deadline).ml.get_trained_models_stats(model_id=deployment_id),
            deadline=deadline,
        )
        return cast("Mapping[str, Any]", response.body)

    async def aget_deployment(self, deployment_id: str, *, deadline: float | None = None) -> DeploymentStatus:
        """Asynchronous :meth:`get_deployment`, by the deployment's own id (a task resolves an inference id to it
        with :meth:`target` before it defers or starts a batch)."""
        check_id("deployment_id", deployment_id)
        client = await self.aclient()
        response = await self.retry.acall(
            f"stats of deployment {shown(deployment_id)}",
            lambda: self._within(client, deadline).ml.get_trained_models_stats(model_id=deployment_id),
            deadline=deadline,
        )
        return pick_deployment(deployment_id, response.body)

    async def aget_deployments(self, deployment_ids: Sequence[str]) -> dict[str, DeploymentStatus | Exception]:
        """The status of several deployments (by their own ids) with one stats request, each missing one mapped to
        its error. Ids too many for one request line are read with one ``_all`` request instead
        (:func:`~airflow_esml.core.status.fits_one_stats_request`)."""
        for deployment_id in deployment_ids:
            check_id("deployment_id", deployment_id)
        ids = sorted(set(deployment_ids))
        if len(ids) == 1:  # one id: its error is the caller's
            return {ids[0]: await self.aget_deployment(ids[0])}
        client = await self.aclient()
        explicit = fits_one_stats_request(ids)
        try:
            response = await self.retry.acall(
                "stats of deployments",
                client.ml.get_trained_models_stats,
                **({"model_id": ",".join(ids)} if explicit else {"model_id": "_all", "size": STATS_MAX_PAGE}),
            )
        except DeploymentNotFoundError:
            # an explicit id that does not exist fails the whole request: ask one by one
            results: dict[str, DeploymentStatus | Exception] = {}
            for deployment_id in ids:
                try:
                    results[deployment_id] = await self.aget_deployment(deployment_id)
                except DeploymentNotFoundError as exc:
                    results[deployment_id] = exc
            return results
        found: dict[str, DeploymentStatus | Exception] = {}
        for deployment_id in ids:
            try:
                found[deployment_id] = pick_deployment(deployment_id, response.body)
            except DeploymentNotFoundError as exc:
                found[deployment_id] = exc
        return found


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
