"""The allocation settings of a deployment, and the one ``_update`` body that gives them to it.

:class:`Settings` is what the operator asks for, what a lease baseline records and what a restore puts
back; :meth:`Settings.update_body` is the only place that builds the body of
``POST _ml/trained_models/<deployment_id>/deployment/_update``
(https://www.elastic.co/docs/api/doc/elasticsearch/operation/operation-ml-update-trained-model-deployment).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_esml.core.status import AdaptiveAllocations, DeploymentStatus

#: switches adaptive allocations off and keeps their bounds, in the same call that fixes the count
#: (Elasticsearch merges a partial ``adaptive_allocations`` object into the deployment's settings)
ADAPTIVE_OFF: dict[str, Any] = {"enabled": False}


def raise_min(adaptive: AdaptiveAllocations, count: int) -> AdaptiveAllocations:
    """``adaptive`` switched on with ``min_number_of_allocations`` at least ``count``; ``max_number_of_allocations``
    raised to that minimum when it is lower (an unset maximum stays unset)."""
    low = max(adaptive.min_number_of_allocations or 0, count)
    high = adaptive.max_number_of_allocations
    return AdaptiveAllocations(True, low, None if high is None else max(high, low))


@dataclass(frozen=True)
class Settings:
    """A fixed ``number_of_allocations``, or adaptive-allocations settings.

    :param number_of_allocations: the fixed count; with adaptive allocations on, the scaler's count when the
        settings were read (None when only adaptive settings were asked for).
    :param adaptive_allocations: the adaptive-allocations settings, if any.
    """

    number_of_allocations: int | None = None
    adaptive_allocations: AdaptiveAllocations | None = None

    @property
    def adaptive_enabled(self) -> bool:
        return self.adaptive_allocations is not None and self.adaptive_allocations.enabled

    @classmethod
    def of(cls, status: DeploymentStatus) -> Settings:
        """The settings the deployment has now."""
        return cls(status.target_allocations, status.adaptive_allocations)

    def matches(self, status: DeploymentStatus) -> bool:
        """True when the deployment has these settings (with adaptive allocations on, the count is the scaler's)."""
        if self.adaptive_allocations is not None and (self.adaptive_enabled or self.number_of_allocations is None):
            return status.adaptive_allocations == self.adaptive_allocations
        return not status.adaptive_enabled and status.target_allocations == self.number_of_allocations

    def update_body(self, status: DeploymentStatus) -> dict[str, Any] | None:
        """The ``_update`` body that gives the deployment these settings (None when it already has them).

        Adaptive settings are sent alone (the scaler owns the count). A fixed count on a deployment with
        adaptive allocations on switches them off in the same call (:data:`ADAPTIVE_OFF`).
        """
        if self.matches(status):
            return None
        if self.number_of_allocations is None or self.adaptive_enabled:
            assert self.adaptive_allocations is not None
            return {"adaptive_allocations": self.adaptive_allocations.to_dict()}
        body: dict[str, Any] = {"number_of_allocations": self.number_of_allocations}
        if status.adaptive_enabled:
            body["adaptive_allocations"] = dict(ADAPTIVE_OFF)
        return body

    def raised_to(self, count: int) -> Settings:
        """These adaptive settings with their minimum raised to ``count`` (and their maximum when it is lower),
        adaptive allocations kept on: the ``raise_min`` policy. The minimum is never lowered; the count is the
        raised minimum, the allocations the deployment is guaranteed."""
        raised = raise_min(self.adaptive_allocations or AdaptiveAllocations(True), count)
        return Settings(raised.min_number_of_allocations, raised)

    def adaptive_form(self) -> Settings:
        """These settings as adaptive allocations switched on: the only form Elastic Cloud Serverless takes (it refuses
        a ``number_of_allocations`` and ``adaptive_allocations.enabled: false`` on both update APIs).

        Adaptive settings that are on are returned as they are. A fixed count ``n`` (adaptive allocations off or
        absent) becomes ``min_number_of_allocations = max_number_of_allocations = n``: the scaler then keeps exactly
        the ``n`` allocations the deployment had, the capacity the baseline recorded. The bounds kept with adaptive
        allocations switched off are not used: they were not in force, and the scaler could lower the capacity
        (to their minimum) or raise it. Without a count, switched-off bounds are switched on as they are.
        """
        if self.adaptive_enabled:
            return self
        if self.number_of_allocations is None:
            off = self.adaptive_allocations or AdaptiveAllocations(True)
            low, high = off.min_number_of_allocations, off.max_number_of_allocations
            return Settings(None, AdaptiveAllocations(True, low, high))
        count = self.number_of_allocations
        return Settings(count, AdaptiveAllocations(True, count, count))

    def describe(self) -> str:
        """``4 allocations`` or ``adaptive allocations (min 1, max 8)``."""
        if self.adaptive_allocations is not None and (self.adaptive_enabled or self.number_of_allocations is None):
            adaptive = self.adaptive_allocations
            state = "adaptive allocations" if adaptive.enabled else "adaptive allocations off"
            return f"{state} (min {adaptive.min_number_of_allocations}, max {adaptive.max_number_of_allocations})"
        return f"{self.number_of_allocations} allocations"

    def to_dict(self) -> dict[str, Any]:
        adaptive = self.adaptive_allocations.to_dict() if self.adaptive_allocations else None
        return {"number_of_allocations": self.number_of_allocations, "adaptive_allocations": adaptive}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Settings:
        number, adaptive = data.get("number_of_allocations"), data.get("adaptive_allocations")
        return cls(
            None if number is None else int(number), AdaptiveAllocations.from_dict(adaptive) if adaptive else None
        )
