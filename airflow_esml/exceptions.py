"""Exceptions raised by the airflow-esml provider."""

from __future__ import annotations

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException


class EsmlError(AirflowException):
    """Base class of the provider's errors.

    ``status`` is the HTTP status of the Elasticsearch answer the error comes from (None when there was none),
    so that a caller can tell a refused API (403, 404, 410) from other failures without parsing the message.
    """

    status: int | None = None


class InvalidParameterError(AirflowFailException, ValueError):
    """A parameter has a value the provider refuses; raised before anything in the cluster changes.

    A retry cannot fix bad input, so the task fails without retrying.
    """


class DeploymentNotFoundError(AirflowFailException, EsmlError):
    """The deployment (or the model) does not exist, or the model is not deployed."""


class DeploymentFailedError(AirflowFailException, EsmlError):
    """The deployment reached a state from which the awaited allocations cannot start (failed, stopping)."""


class AllocationsTimeoutError(EsmlError):
    """The allocations were not started before the deadline."""


class ElasticsearchRequestError(EsmlError):
    """An Elasticsearch request failed with a terminal (non-retryable) error, or kept failing."""


class PrivilegeError(AirflowFailException, ElasticsearchRequestError):
    """Elasticsearch refused the call (403 ``security_exception``): the API key or user lacks a privilege.

    The message names the transport action and the privileges that Elasticsearch says would grant it (never the
    key). A retry would be refused the same way, so the task fails.

    :param action: the refused transport action, e.g. ``cluster:admin/xpack/ml/trained_models/deployment/update``.
    :param privileges: the privileges that grant it, as Elasticsearch lists them (most specific first).
    :param kind: ``"cluster"`` or ``"index"``.
    :param indices: the indices of a refused index action.
    """

    def __init__(
        self,
        message: str,
        *,
        action: str | None = None,
        privileges: tuple[str, ...] = (),
        kind: str | None = None,
        indices: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = 403
        self.action, self.privileges, self.kind, self.indices = action, privileges, kind, indices


class ApiNotAvailableError(AirflowFailException, ElasticsearchRequestError):
    """The API exists but is not available on this cluster (410 ``api_not_available_exception``, as Elastic
    Cloud Serverless answers for ``_nodes``, ``_ml/info``, ``_cluster/settings`` and other operator-only APIs)."""

    status = 410


class TransientRequestError(ElasticsearchRequestError):
    """An Elasticsearch request kept failing with transient errors (429, 502-504, resets) after every retry.

    A wait treats it as "no news" and polls again; anything else raises it.
    """


class DeploymentOwnershipError(AirflowFailException, ElasticsearchRequestError):
    """Elasticsearch refused an update because another API owns the deployment (its 409 since 9.2): a deployment
    created by an inference endpoint is scaled through the inference API, a deployment made through the
    trained-models API through that API. The message names the owning API and the id to pass; a retry cannot
    help.
    """


class DeploymentStateError(EsmlError):
    """The deployment is in a state in which Elasticsearch refuses the change (for example still starting)."""


class InsufficientCapacityError(AirflowFailException, EsmlError):
    """The ML nodes cannot hold the requested allocations and ``capacity_policy`` is ``"fail"``.

    Raised before anything in the cluster changes; a retry would see the same nodes, so the task fails.
    """


class LeaseLockTimeoutError(EsmlError):
    """The lease document stayed locked by another operation for longer than ``lock_wait`` (a retry may work)."""


class LockLostError(EsmlError):
    """Another operation changed the lease document while this one held its lock (after the lock expired); the
    operation starts again."""


class LeaseLostError(AirflowFailException, EsmlError):
    """A run's lease was reaped (it expired without renewal) while the run still needed it.

    The message says when, by which operation, and what the deployment's target was then. Raised by the
    lease's keeper and by its release; a retry would find the same record, so the task fails.
    """


class ConflictingTombstonesError(EsmlError):
    """The reap records of a deployment kept changing while an operation wrote them (a retry may work)."""


class IndexTaskError(EsmlError):
    """An Elasticsearch ``_reindex`` or ``_update_by_query`` task failed, was cancelled, or its documents
    failed (``on_document_failure="fail"``); the message has Elasticsearch's reason and the first failures."""


class IndexTaskNotFoundError(AirflowFailException, EsmlError):
    """``GET _tasks/<id>`` knows no such task (it was never started, or its result was deleted from ``.tasks``)."""


class IndexTaskTimeoutError(EsmlError):
    """The Elasticsearch task did not end before the operator's ``timeout``; it was cancelled."""
