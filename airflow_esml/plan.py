"""Validate a requested deployment setting and plan the update call, before anything in the cluster changes.

Pure Python. Values may arrive from Jinja templates as strings ("4", "{'enabled': True}"), so they are
parsed strictly here; every refusal names the parameter and the value.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from airflow_esml.exceptions import DeploymentStateError, InvalidParameterError
from airflow_esml.params import positive_int
from airflow_esml.status import AdaptiveAllocations, DeploymentStatus

AdaptivePolicy = Literal["fail", "disable"]
ADAPTIVE_POLICIES: tuple[str, ...] = ("fail", "disable")
_ADAPTIVE_KEYS = frozenset({"enabled", "min_number_of_allocations", "max_number_of_allocations"})


def parse_adaptive(value: Any, name: str = "adaptive_allocations") -> AdaptiveAllocations:
    """Adaptive-allocations settings from a dict (or its rendered-template string form)."""
    if isinstance(value, str):
        value = _parse_mapping_text(name, value)
    if isinstance(value, AdaptiveAllocations):
        return value
    if not isinstance(value, Mapping):
        raise InvalidParameterError(f"{name} must be a dict with 'enabled' and optional bounds, got {value!r}")
    unknown = sorted(set(value) - _ADAPTIVE_KEYS)
    if unknown:
        raise InvalidParameterError(f"{name} has unknown key(s) {unknown}; allowed are {sorted(_ADAPTIVE_KEYS)}")
    enabled = value.get("enabled")
    if not isinstance(enabled, bool):
        raise InvalidParameterError(f"{name}['enabled'] must be true or false, got {enabled!r}")
    low, high = value.get("min_number_of_allocations"), value.get("max_number_of_allocations")
    low = None if low is None else positive_int(f"{name}['min_number_of_allocations']", low, minimum=0)
    high = None if high is None else positive_int(f"{name}['max_number_of_allocations']", high)
    if low is not None and high is not None and low > high:
        raise InvalidParameterError(
            f"{name}: min_number_of_allocations ({low}) must not be larger than max_number_of_allocations ({high})"
        )
    return AdaptiveAllocations(enabled, low, high)


def _parse_mapping_text(name: str, text: str) -> Any:
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError):
            continue
    raise InvalidParameterError(f"{name} must be a dict, got the string {text!r}")


@dataclass(frozen=True)
class DesiredSettings:
    """What the caller asked for: exactly one of a fixed count or adaptive settings."""

    number_of_allocations: int | None = None
    adaptive_allocations: AdaptiveAllocations | None = None

    @classmethod
    def parse(cls, number_of_allocations: Any, adaptive_allocations: Any) -> DesiredSettings:
        number_given = number_of_allocations not in (None, "", "None")
        adaptive_given = adaptive_allocations not in (None, "", "None")
        if number_given == adaptive_given:
            raise InvalidParameterError(
                "give exactly one of number_of_allocations and adaptive_allocations, got "
                f"number_of_allocations={number_of_allocations!r} and adaptive_allocations={adaptive_allocations!r}"
            )
        if number_given:
            return cls(number_of_allocations=positive_int("number_of_allocations", number_of_allocations))
        return cls(adaptive_allocations=parse_adaptive(adaptive_allocations))


@dataclass(frozen=True)
class UpdatePlan:
    """The update call to make (``body`` is None when the deployment already has the settings)."""

    current: DeploymentStatus
    body: dict[str, Any] | None

    @property
    def changes(self) -> bool:
        return self.body is not None

    @property
    def new_number_of_allocations(self) -> int | None:
        if self.body is None:
            return None if self.current.adaptive_enabled else self.current.target_allocations
        return self.body.get("number_of_allocations")

    @property
    def new_adaptive_allocations(self) -> dict[str, Any] | None:
        if self.body is None or "adaptive_allocations" not in self.body:
            current = self.current.adaptive_allocations
            return current.to_dict() if current else None
        return self.body["adaptive_allocations"]


def plan_update(current: DeploymentStatus, desired: DesiredSettings, adaptive_policy: str = "fail") -> UpdatePlan:
    """Check ``desired`` against the deployment's limits and state, and say which call would apply it.

    :raises InvalidParameterError: the request breaks a limit or the adaptive-allocations policy.
    :raises DeploymentStateError: a change is needed but the deployment is not ``started``.
    """
    if adaptive_policy not in ADAPTIVE_POLICIES:
        raise InvalidParameterError(f"adaptive_policy must be one of {ADAPTIVE_POLICIES}, got {adaptive_policy!r}")
    name = current.deployment_id
    _check_priority(current, desired)
    body: dict[str, Any] | None
    if desired.number_of_allocations is not None:
        body = {"number_of_allocations": desired.number_of_allocations}
        if current.adaptive_enabled:
            if adaptive_policy == "fail":
                raise InvalidParameterError(
                    f"number_of_allocations={desired.number_of_allocations} cannot be set: deployment {name} has "
                    f"adaptive allocations enabled ({current.adaptive_allocations}). Pass adaptive_allocations to "
                    "change its bounds, or adaptive_policy='disable' to switch adaptive allocations off for this "
                    "change (the previous settings are in the task's XCom result, for restoring)"
                )
            body["adaptive_allocations"] = AdaptiveAllocations(enabled=False).to_dict()
        elif current.target_allocations == desired.number_of_allocations:
            body = None
    else:
        assert desired.adaptive_allocations is not None
        wanted = desired.adaptive_allocations
        body = None if current.adaptive_allocations == wanted else {"adaptive_allocations": wanted.to_dict()}
    if body is not None and current.state != "started":
        raise DeploymentStateError(
            f"deployment {name} is {current.state or 'not started'}; Elasticsearch only updates started "
            "deployments. Wait for it with AllocationsStartedSensor first"
        )
    return UpdatePlan(current, body)


def _check_priority(current: DeploymentStatus, desired: DesiredSettings) -> None:
    if current.priority != "low":
        return
    if (desired.number_of_allocations or 0) > 1:
        raise InvalidParameterError(
            f"number_of_allocations={desired.number_of_allocations} is refused: deployment "
            f"{current.deployment_id} has priority 'low', which is limited to 1 allocation"
        )
    adaptive_max = desired.adaptive_allocations.max_number_of_allocations if desired.adaptive_allocations else None
    if adaptive_max is not None and adaptive_max > 1:
        raise InvalidParameterError(
            f"adaptive_allocations['max_number_of_allocations']={adaptive_max} is refused: deployment "
            f"{current.deployment_id} has priority 'low', which is limited to 1 allocation"
        )
