"""What an id names: the provider's one notion of "what is scaled", as values.

Users pass a trained-model deployment id or an inference endpoint id wherever a deployment id is accepted.
:func:`resolve_target` decides, from what ``GET _inference/<id>`` (and, for a default endpoint, the
trained-model stats API) answered, which of four things the id names:

- ``trained_model_deployment``: a deployment made through the trained-models API (or any id when the
  cluster has no ``_inference`` API, or the key may not read it);
- ``endpoint_deployment``: the deployment an ``elasticsearch``/``elser`` inference endpoint created, whose
  ``deployment_id`` is the inference id (``ElasticsearchInternalModel.mlNodeDeploymentId()`` in
  elastic/elasticsearch);
- ``attached_endpoint``: an endpoint created on an existing deployment (``service_settings.deployment_id``);
  the deployment is scaled through the API that owns it: the trained-models API, or the inference API of
  the endpoint that created it;
- ``default_endpoint``: one of Elasticsearch's default endpoints (``.elser-2-elasticsearch``, ...) with no
  deployment yet: Elasticsearch deploys it at its first inference call (``maybeStartDeployment`` in
  ``BaseElasticsearchInternalService``), and so does the provider before it scales one up.

It also holds the translation of an ML ``_update`` body (:meth:`~airflow_esml.core.settings.Settings.update_body`)
into the body of ``PUT _inference/<task_type>/<inference_id>/_update`` (elastic/elasticsearch PR #114457),
the versions that have that API, and the reading of the ownership 409s that Elasticsearch 9.2 added
(PR #130940). Pure Python: no Airflow or Elasticsearch imports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from airflow_esml.core.params import cut
from airflow_esml.exceptions import InvalidParameterError

ManagedBy = Literal["trained_models", "inference"]
TargetKind = Literal["trained_model_deployment", "endpoint_deployment", "attached_endpoint", "default_endpoint"]

#: the services whose endpoints run on the cluster's own ML nodes (``elser`` is a deprecated alias)
IN_CLUSTER_SERVICES = frozenset({"elasticsearch", "elser"})

#: Elasticsearch's default endpoints and their task types (``ElasticsearchInternalService.defaultConfigs``):
#: ELSER and E5 from 8.17.0 (PR #116931), rerank from 9.0.0 (PR #117939)
DEFAULT_ENDPOINTS: Mapping[str, str] = {
    ".elser-2-elasticsearch": "sparse_embedding",
    ".multilingual-e5-small-elasticsearch": "text_embedding",
    ".rerank-v1-elasticsearch": "rerank",
}

#: the first version with ``PUT _inference/<task_type>/<id>/_update`` (the specification's ``since=8.17.0``;
#: the docs were backported to 8.16, which is left on the ML update API)
INFERENCE_UPDATE_SINCE = (8, 17)
#: the first version whose inference ``_update`` takes exactly one of ``num_allocations`` and
#: ``adaptive_allocations``, setting one clearing the other (the parser-based ``Update`` of
#: ``ElasticsearchInternalServiceSettings``, after 9.2); before it the two were merged into the endpoint's
EXCLUSIVE_UPDATE_SINCE = (9, 4)


@dataclass(frozen=True)
class ServerInfo:
    """What ``GET /`` says about the cluster, as far as routing needs it.

    :param version: ``(major, minor, patch)`` of ``version.number``; None when it could not be read.
    :param serverless: ``version.build_flavor`` is ``serverless`` (whose version number is not the stack's).
    """

    version: tuple[int, int, int] | None
    serverless: bool = False

    @classmethod
    def from_info(cls, body: Mapping[str, Any]) -> ServerInfo:
        version = body.get("version") or {}
        return cls(parse_version(str(version.get("number", ""))), version.get("build_flavor") == "serverless")

    def at_least(self, since: tuple[int, int]) -> bool:
        """True on Serverless (which follows the newest code) or from version ``since``."""
        return self.serverless or (self.version is not None and self.version[:2] >= since)

    @property
    def has_inference_update(self) -> bool:
        """Whether the cluster has ``PUT _inference/<task_type>/<id>/_update`` (8.17+, Serverless)."""
        return self.at_least(INFERENCE_UPDATE_SINCE)

    @property
    def exclusive_update(self) -> bool:
        """Whether the inference ``_update`` takes exactly one of ``num_allocations`` and ``adaptive_allocations``."""
        return self.at_least(EXCLUSIVE_UPDATE_SINCE)


def parse_version(number: str) -> tuple[int, int, int] | None:
    """``(9, 2, 0)`` from ``9.2.0`` or ``9.2.0-SNAPSHOT``; None when the text has no version."""
    match = re.match(r"\s*(\d+)\.(\d+)(?:\.(\d+))?", number)
    if not match:
        return None
    return int(match[1]), int(match[2]), int(match[3] or 0)


@dataclass(frozen=True)
class Endpoint:
    """One inference endpoint as ``GET _inference/<id>`` shows it.

    :param deployment_id: ``service_settings.deployment_id``: set when the endpoint was attached to an
        existing deployment.
    """

    inference_id: str
    task_type: str
    service: str
    deployment_id: str | None = None
    model_id: str | None = None

    @property
    def in_cluster(self) -> bool:
        return self.service in IN_CLUSTER_SERVICES

    @property
    def ml_deployment_id(self) -> str:
        """The deployment the endpoint infers with: ``service_settings.deployment_id``, else its own id."""
        return self.deployment_id or self.inference_id


def parse_endpoint(body: Mapping[str, Any], inference_id: str) -> Endpoint | None:
    """The endpoint ``inference_id`` from a ``GET _inference/<id>`` answer, or None when it is not listed.

    Reads ``{"endpoints": [...]}`` (8.15+) and the older ``{"models": [...]}`` with ``model_id`` as the id.
    A single path segment that is a task type lists that type's endpoints, so only an exact id matches.
    """
    entries = body.get("endpoints", body.get("models")) or []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        entry_id = entry.get("inference_id", entry.get("model_id"))
        if entry_id != inference_id:
            continue
        settings = entry.get("service_settings") or {}
        return Endpoint(
            inference_id=inference_id,
            task_type=str(entry.get("task_type", "")),
            service=str(entry.get("service", "")),
            deployment_id=settings.get("deployment_id") or None,
            model_id=settings.get("model_id"),
        )
    return None


@dataclass(frozen=True)
class Target:
    """What an id names, and how its deployment is read and scaled.

    :param id: the id as given (a deployment id or an inference id).
    :param kind: trained_model_deployment, endpoint_deployment, attached_endpoint or default_endpoint.
    :param deployment_id: the deployment whose stats are read (and that the ML update API changes).
    :param managed_by: the API its updates go through: ``trained_models`` (``POST _ml/trained_models/<deployment_id>/
        deployment/_update``) or ``inference`` (``PUT _inference/<task_type>/<inference_id>/_update``).
    :param inference_id: with ``managed_by="inference"``, the endpoint whose ``_update`` changes the deployment
        (the one that created it); otherwise the endpoint the id names, if any.
    :param task_type: the task type of ``inference_id``'s endpoint.
    :param endpoint_id: the endpoint the id names, if it names one (``BatchInferenceOperator`` infers through it).
    :param endpoint_task_type: that endpoint's task type.
    :param deployed: False for a default endpoint with no deployment yet.
    """

    id: str
    kind: TargetKind
    deployment_id: str
    managed_by: ManagedBy = "trained_models"
    inference_id: str | None = None
    task_type: str | None = None
    endpoint_id: str | None = None
    endpoint_task_type: str | None = None
    deployed: bool = True

    @property
    def is_endpoint(self) -> bool:
        return self.endpoint_id is not None

    @property
    def lazily_deployed(self) -> bool:
        """A default endpoint with no deployment yet: one inference call deploys it."""
        return not self.deployed

    def describe(self) -> str:
        """``inference endpoint e5 (text_embedding), scaled through the inference API`` and the like."""
        if self.kind == "trained_model_deployment":
            return f"trained-model deployment {self.deployment_id}"
        text = f"inference endpoint {self.endpoint_id} ({self.endpoint_task_type})"
        if self.deployment_id != self.endpoint_id:
            text += f" on deployment {self.deployment_id}"
        if not self.deployed:
            return text + ", not deployed yet"
        if self.managed_by == "inference":
            return text + f", scaled through the inference API of endpoint {self.inference_id}"
        return text + ", scaled through the trained models API"

    def to_xcom(self) -> dict[str, Any]:
        """The XCom fields that say which API scales the deployment: ``managed_by``, ``inference_id``, ``task_type``."""
        return {"managed_by": self.managed_by, "inference_id": self.inference_id, "task_type": self.task_type}

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "deployment_id": self.deployment_id,
            "managed_by": self.managed_by,
            "inference_id": self.inference_id,
            "task_type": self.task_type,
            "endpoint_id": self.endpoint_id,
            "endpoint_task_type": self.endpoint_task_type,
            "deployed": self.deployed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Target:
        return cls(**dict(data))


def trained_model_target(deployment_id: str) -> Target:
    """The target of an id that names no inference endpoint."""
    return Target(deployment_id, "trained_model_deployment", deployment_id)


def resolve_target(
    target_id: str,
    endpoint: Endpoint | None,
    server: ServerInfo,
    *,
    owner: Endpoint | None = None,
    deployed: bool | None = None,
) -> Target:
    """Decide what ``target_id`` names.

    :param target_id: the id as given.
    :param endpoint: the endpoint ``GET _inference/<target_id>`` returned; None when there is none (404), or when
        the cluster has no ``_inference`` API or the key may not read it.
    :param server: the cluster's version and flavour (which update API it has).
    :param owner: for an endpoint attached to deployment ``d``: the endpoint ``GET _inference/<d>`` returned, if
        any (an endpoint that created ``d`` owns its updates).
    :param deployed: for a default endpoint: whether the stats API lists its deployment (None: not asked).
    :raises InvalidParameterError: the id names an endpoint of an external service (nothing to scale).
    """
    if endpoint is None:
        return trained_model_target(target_id)
    if not endpoint.in_cluster:
        raise InvalidParameterError(
            f"deployment_id={cut(target_id)!r} names an inference endpoint of the {cut(endpoint.service)!r} service, "
            "which runs outside the cluster's ML nodes: it has no deployment to scale. Pass the id of an "
            "'elasticsearch' (or 'elser') endpoint, or of a trained-model deployment"
        )
    inference = server.has_inference_update
    deployment_id = endpoint.ml_deployment_id
    if deployment_id == target_id:
        lazy = target_id in DEFAULT_ENDPOINTS and deployed is False
        kind: TargetKind = "default_endpoint" if lazy else "endpoint_deployment"
        managed_by: ManagedBy = "inference" if inference else "trained_models"
        return _endpoint_target(endpoint, kind, managed_by, endpoint, deployed=not lazy)
    created_by_owner = (
        owner is not None and owner.in_cluster and owner.ml_deployment_id == owner.inference_id == deployment_id
    )
    if owner is not None and created_by_owner and inference:
        return _endpoint_target(endpoint, "attached_endpoint", "inference", owner)
    return _endpoint_target(endpoint, "attached_endpoint", "trained_models", endpoint)


def _endpoint_target(
    named: Endpoint, kind: TargetKind, managed_by: ManagedBy, updated_through: Endpoint, *, deployed: bool = True
) -> Target:
    return Target(
        id=named.inference_id,
        kind=kind,
        deployment_id=named.ml_deployment_id,
        managed_by=managed_by,
        inference_id=updated_through.inference_id,
        task_type=updated_through.task_type,
        endpoint_id=named.inference_id,
        endpoint_task_type=named.task_type,
        deployed=deployed,
    )


# -- the inference _update body ---------------------------------------------------------------------------


def inference_update_body(ml_body: Mapping[str, Any], *, exclusive: bool) -> dict[str, Any]:
    """The body of ``PUT _inference/<task_type>/<id>/_update`` that makes the change of an ML ``_update`` body.

    ``number_of_allocations`` becomes ``service_settings.num_allocations`` and ``adaptive_allocations`` goes
    into ``service_settings`` with its unset bounds left out.

    :param ml_body: what :meth:`~airflow_esml.core.settings.Settings.update_body` returned.
    :param exclusive: the cluster takes exactly one of the two settings (a count clears the adaptive settings):
        a count that also switches adaptive allocations off is then sent alone. Before that, the settings are
        merged into the endpoint's, so the count goes with ``adaptive_allocations: {"enabled": false}``.
    """
    service: dict[str, Any] = {}
    if ml_body.get("number_of_allocations") is not None:
        service["num_allocations"] = int(ml_body["number_of_allocations"])
    adaptive = ml_body.get("adaptive_allocations")
    if adaptive is not None and not (exclusive and "num_allocations" in service):
        service["adaptive_allocations"] = {k: v for k, v in adaptive.items() if v is not None}
    if not service:
        raise ValueError(f"nothing to update in {dict(ml_body)!r}")
    return {"service_settings": service}


#: Elasticsearch's 400s that say the other ``_update`` semantics applies (see :func:`inference_update_body`)
_EXCLUSIVE_REFUSAL = "cannot be set if [adaptive_allocations] is set"
_MERGED_REFUSAL = "[number_of_allocations] cannot be set if adaptive allocations is enabled"


def other_semantics(reason: str, *, exclusive: bool) -> bool | None:
    """After a 400 on an inference ``_update``: the ``exclusive`` value to try instead, or None when the
    refusal is not about how the count and the adaptive settings combine."""
    if exclusive and _MERGED_REFUSAL in reason:
        return False
    if not exclusive and _EXCLUSIVE_REFUSAL in reason:
        return True
    return None


# -- ownership ---------------------------------------------------------------------------------------------

Ownership = Literal["inference", "trained_models", "other_endpoint"]

_OWNERSHIP_PATTERNS: tuple[tuple[Ownership, re.Pattern[str]], ...] = (
    ("inference", re.compile(r"created by inference endpoint \[(?P<owner>[^\]]*)\].*through the inference API")),
    ("trained_models", re.compile(r"through the trained models API")),
    ("other_endpoint", re.compile(r"by another inference endpoint.*inference endpoint id \[(?P<owner>[^\]]*)\]")),
)


@dataclass(frozen=True)
class OwnershipConflict:
    """A 409 that says another API owns the deployment's updates (elastic/elasticsearch PR #130940).

    :param owner: ``inference`` (created by an endpoint), ``trained_models`` (an endpoint attached to a deployment
        made by the trained-models API), or ``other_endpoint`` (attached to another endpoint's deployment).
    :param owner_id: the id to use, when Elasticsearch names it.
    """

    owner: Ownership
    owner_id: str | None

    def message(self, what: str, target_id: str, deployment_id: str) -> str:
        """The error's text: which API owns the deployment and which id to pass."""
        if self.owner == "inference":
            endpoint = self.owner_id or deployment_id
            return (
                f"{what}: deployment {cut(deployment_id)} was created by inference endpoint {cut(endpoint)} and can "
                f"only be scaled through the inference API (PUT _inference/<task_type>/{cut(endpoint)}/_update). "
                f"Pass deployment_id={cut(endpoint)!r} with a key that may read and manage inference endpoints "
                "(monitor_inference, manage_inference), so that the provider finds the endpoint"
            )
        if self.owner == "trained_models":
            return (
                f"{what}: inference endpoint {cut(target_id)} uses deployment {cut(deployment_id)}, which it did not "
                "create: the deployment can only be scaled through the trained models API "
                f"(POST _ml/trained_models/{cut(deployment_id)}/deployment/_update). Pass "
                f"deployment_id={cut(deployment_id)!r}"
            )
        endpoint = self.owner_id or deployment_id
        return (
            f"{what}: inference endpoint {cut(target_id)} uses deployment {cut(deployment_id)}, created by another "
            f"inference endpoint: it can only be scaled through the inference API of endpoint {cut(endpoint)}. "
            f"Pass deployment_id={cut(endpoint)!r}"
        )


def ownership_conflict(reason: str) -> OwnershipConflict | None:
    """Read a 409's reason: the ownership conflict it states, or None for any other 409."""
    for owner, pattern in _OWNERSHIP_PATTERNS:
        match = pattern.search(reason)
        if match:
            return OwnershipConflict(owner, match.groupdict().get("owner"))
    return None


# -- deploying a default endpoint ---------------------------------------------------------------------------

#: the text of the one inference call that deploys a default endpoint
WARM_UP_TEXT = "warm up"


def warm_up_body(task_type: str) -> dict[str, Any]:
    """The body of the trivial ``POST _inference/<task_type>/<id>`` that deploys a default endpoint
    (``rerank`` needs a query)."""
    if task_type == "rerank":
        return {"query": WARM_UP_TEXT, "input": [WARM_UP_TEXT]}
    return {"input": [WARM_UP_TEXT]}
