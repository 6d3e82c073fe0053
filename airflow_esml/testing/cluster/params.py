"""What a start or an update of a deployment asks for, with Elasticsearch's validation messages.

These are the ``Request`` objects of Elasticsearch's actions (``validate()`` in
x-pack/plugin/core/src/main/java/org/elasticsearch/xpack/core/ml/action/StartTrainedModelDeploymentAction.java
and UpdateTrainedModelDeploymentAction.java); the HTTP parsing that fills them is in
:mod:`airflow_esml.testing.api.ml_params`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airflow_esml.testing.cluster.adaptive import AdaptiveSettings, from_fields
from airflow_esml.testing.cluster.values import bad_request
from airflow_esml.testing.protocol import EsError

MAX_QUEUE_CAPACITY = 100_000
DEFAULT_QUEUE_CAPACITY = 10_000


def validation_error(messages: list[str], *, type_: str = "action_request_validation_exception") -> EsError:
    """``Validation Failed: 1: a;2: b;``."""
    text = "".join(f"{i}: {m};" for i, m in enumerate(messages, start=1))
    return bad_request(type_, f"Validation Failed: {text}")


@dataclass
class StartParams:
    """Everything a start request can set (defaults as in current Elasticsearch)."""

    model_id: str
    deployment_id: str | None = None
    number_of_allocations: int | None = None
    threads_per_allocation: int = 1
    queue_capacity: int = DEFAULT_QUEUE_CAPACITY
    cache_size: str | None = None
    priority: str = "normal"
    timeout: float = 30.0
    wait_for: str = "started"
    adaptive: AdaptiveSettings | None = None

    def errors(self) -> list[str]:
        """Validation messages in Elasticsearch's order."""
        found: list[str] = []
        n, threads = self.number_of_allocations, self.threads_per_allocation
        adaptive_on = self.adaptive is not None and bool(self.adaptive.enabled)
        if n is not None:
            if n < 1:
                found.append("[number_of_allocations] must be a positive integer")
            if adaptive_on:
                found.append("[number_of_allocations] cannot be set if adaptive allocations is enabled")
        if threads < 1:
            found.append("[threads_per_allocation] must be a positive integer")
        if threads > 32 or threads < 1 or threads & (threads - 1):
            found.append("[threads_per_allocation] must be a power of 2 less than or equal to 32")
        if self.queue_capacity < 1:
            found.append("[queue_capacity] must be a positive integer")
        if self.queue_capacity > MAX_QUEUE_CAPACITY:
            found.append(f"[queue_capacity] must be less than {MAX_QUEUE_CAPACITY}")
        if self.timeout <= 0:
            found.append("[timeout] must be positive")
        if self.priority == "low":
            if (n if n is not None else 1) != 1:
                found.append("[number_of_allocations] must be 1 when [priority] is low")
            if threads != 1:
                found.append("[threads_per_allocation] must be 1 when [priority] is low")
        if self.adaptive is not None:
            found.extend(self.adaptive.errors())
        return found

    def validate(self) -> None:
        if found := self.errors():
            raise validation_error(found)


@dataclass
class UpdateParams:
    """An update request: ``number_of_allocations`` and/or a partial ``adaptive_allocations``.

    :param adaptive_set: whether ``adaptive_allocations`` was in the request at all.
    :param adaptive_fields: its present fields, or ``None`` for JSON null (remove the settings).
    """

    number_of_allocations: int | None = None
    adaptive_set: bool = False
    adaptive_fields: dict[str, Any] | None = field(default_factory=dict)

    def errors(self) -> list[str]:
        found: list[str] = []
        n = self.number_of_allocations
        enabled = bool(self.adaptive_set and self.adaptive_fields and self.adaptive_fields.get("enabled"))
        if n is not None and n < 1:
            found.append("[number_of_allocations] must be a positive integer")
        if n is not None and enabled:
            found.append("[number_of_allocations] cannot be set if adaptive allocations is enabled")
        if self.adaptive_set and self.adaptive_fields is not None:
            found.extend(from_fields(self.adaptive_fields).errors())
        return found

    def validate(self) -> None:
        if found := self.errors():
            raise validation_error(found)
