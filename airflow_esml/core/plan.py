"""Plan the update call that gives a deployment the requested settings, before anything in the cluster changes.

Pure Python. The requested :class:`~airflow_esml.core.settings.Settings` come from
:func:`airflow_esml.core.params.parse_settings`; here they are checked against the deployment's priority,
adaptive allocations and state, and turned into the body of the ``_update`` call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_esml.core.params import DEFAULT_ADAPTIVE_POLICY, check_adaptive_policy, check_serverless_policy
from airflow_esml.core.settings import Settings
from airflow_esml.core.status import DeploymentStatus
from airflow_esml.exceptions import DeploymentStateError, InvalidParameterError


@dataclass(frozen=True)
class UpdatePlan:
    """The update call to make (``body`` is None when the deployment already has the settings).

    :param raised: a fixed count became a raised adaptive minimum (``adaptive_policy="raise_min"``); the
        adaptive maximum is then the deployment's own (or the raised minimum), not a request to check.
    """

    current: DeploymentStatus
    body: dict[str, Any] | None
    raised: bool = False

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

    @property
    def new_settings(self) -> Settings:
        """The settings the deployment has once the plan is applied."""
        return Settings.from_dict(
            {
                "number_of_allocations": self.new_number_of_allocations,
                "adaptive_allocations": self.new_adaptive_allocations,
            }
        )


def plan_update(
    current: DeploymentStatus,
    desired: Settings,
    adaptive_policy: str = DEFAULT_ADAPTIVE_POLICY,
    *,
    serverless: bool = False,
) -> UpdatePlan:
    """Check ``desired`` against the deployment's limits and state, and say which call would apply it.

    :param current: the deployment as the stats API shows it now.
    :param desired: the settings asked for: a fixed count or adaptive settings.
    :param adaptive_policy: what a fixed count does to a deployment with adaptive allocations on:
        ``"raise_min"`` (default) raises their minimum to the count (and their maximum when it is lower),
        keeping them on; ``"fail"`` refuses; ``"disable"`` switches them off in the same call.
    :param serverless: the cluster is an Elastic Cloud Serverless project, where adaptive allocations are always
        on: only adaptive settings are sent (a fixed count is a ``raise_min``), and ``"disable"`` is refused.
    :raises InvalidParameterError: the request breaks a limit or the adaptive-allocations policy.
    :raises DeploymentStateError: a change is needed but the deployment is not ``started``.
    """
    policy = check_adaptive_policy(adaptive_policy)
    name = current.deployment_id
    _check_priority(current, desired)
    fixed = desired.number_of_allocations is not None and desired.adaptive_allocations is None
    if serverless:
        _check_serverless(desired, policy)
    if fixed and (current.adaptive_enabled or serverless) and policy == "fail":
        switch = "" if serverless else ", or adaptive_policy='disable' to switch them off for this change"
        raise InvalidParameterError(
            f"number_of_allocations={desired.number_of_allocations} cannot be set: deployment {name} has "
            f"adaptive allocations enabled ({current.adaptive_allocations}). Pass adaptive_allocations to "
            f"change its bounds, adaptive_policy='raise_min' to raise its minimum for the window{switch} (the "
            "previous settings are in the task's XCom result, for restoring)"
        )
    raised = fixed and policy == "raise_min" and (current.adaptive_enabled or serverless)
    if raised:
        assert desired.number_of_allocations is not None
        desired = Settings.of(current).raised_to(desired.number_of_allocations)
    body = desired.update_body(current)
    if body is not None and current.state != "started":
        raise DeploymentStateError(
            f"deployment {name} is {current.state or 'not started'}; Elasticsearch only updates started "
            "deployments. Wait for it with AllocationsStartedSensor first"
        )
    return UpdatePlan(current, body, raised)


def _check_serverless(desired: Settings, policy: str) -> None:
    """Refuse what a Serverless project cannot apply: switching adaptive allocations off."""
    adaptive = desired.adaptive_allocations
    if adaptive is not None and not adaptive.enabled:
        raise InvalidParameterError(
            f"adaptive_allocations={adaptive.to_dict()} cannot be set on Elastic Cloud Serverless: trained model "
            "autoscaling is always on there and cannot be turned off; give enabled=True with the bounds you need"
        )
    if desired.adaptive_allocations is None:
        check_serverless_policy(policy)  # type: ignore[arg-type]


def _check_priority(current: DeploymentStatus, desired: Settings) -> None:
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
