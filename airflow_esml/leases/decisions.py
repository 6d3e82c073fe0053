"""The decisions taken from a lease document: the deployment's target, drift, and the refusal of a lease.

Pure Python: no Airflow or Elasticsearch imports; the I/O that applies them is in
:mod:`airflow_esml.leases.store`. See ``docs/leases.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from airflow_esml.core.params import AdaptivePolicy, DriftPolicy
from airflow_esml.core.settings import Settings
from airflow_esml.core.status import DeploymentStatus
from airflow_esml.leases.document import LeaseDoc
from airflow_esml.leases.lease import Lease

#: how many drift records a lease document keeps
DRIFT_HISTORY = 10


def goal_settings(baseline: Settings, leases: Iterable[Lease], *, serverless: bool = False) -> Settings:
    """The target: the baseline when no lease is live, else at least every live lease's request.

    A baseline with adaptive allocations on keeps them on, with ``min_number_of_allocations`` raised to the
    largest request (and ``max_number_of_allocations`` when it is lower), unless a live lease was taken with
    ``adaptive_policy="disable"`` (then, as for a fixed baseline, a fixed ``max(baseline, every request)``).
    On Serverless (``serverless``) adaptive allocations are always on, so the target is always adaptive: a
    baseline recorded as a fixed count is restored in its :meth:`~airflow_esml.core.settings.Settings.adaptive_form`
    (``min = max =`` the count), the one place a restore's settings are decided.
    """
    live = list(leases)
    requests = [lease.allocations for lease in live]
    if not requests:
        return baseline.adaptive_form() if serverless else baseline
    disable = any(lease.adaptive_policy == "disable" for lease in live)
    if serverless or (baseline.adaptive_enabled and not disable):
        return baseline.raised_to(max(requests))
    return Settings(max(baseline.number_of_allocations or 0, *requests))


def adaptive_refusal(deployment_id: str, baseline: Settings, policy: AdaptivePolicy) -> str | None:
    """Why a lease taken with ``policy`` is refused on this baseline (``fail`` on adaptive allocations), or None."""
    if policy != "fail" or not baseline.adaptive_enabled:
        return None
    return (
        f"{deployment_id} has adaptive allocations enabled ({baseline.describe()}) and adaptive_policy='fail': "
        "nothing was changed. Pass adaptive_policy='raise_min' (the default) to raise their minimum while the "
        "lease is held, or 'disable' to switch them off until the last lease ends"
    )


def held_by_leases(live: int, baseline: Settings, goal: Settings) -> dict[str, Any]:
    """The ``leases`` entry of a plain update's XCom result: what the update set, and what the leases hold.

    ``deferred_until_leases_end``: the request is below what the leases hold; it becomes the deployment's
    setting when the last lease ends.
    """
    return {
        "live": live,
        "baseline": baseline.to_dict(),
        "target": goal.to_dict(),
        "deferred_until_leases_end": goal != baseline,
    }


@dataclass(frozen=True)
class Drift:
    """A deployment whose settings were changed by someone else while leases were held.

    :param expected: what the leases last gave it (or the baseline).
    :param found: what it has now.
    :param policy: the drift policy applied.
    """

    deployment_id: str
    expected: Settings
    found: Settings
    policy: DriftPolicy
    at: float

    def message(self, goal: Settings, leases_left: int) -> str:
        head = (
            f"{self.deployment_id}: its settings were changed outside the leases (expected "
            f"{self.expected.describe()}, found {self.found.describe()})"
        )
        if self.policy == "respect":
            if leases_left:
                tail = (
                    f"; keeping the hand-made setting as the new baseline; {leases_left} live lease(s) still get "
                    f"{goal.describe()}"
                )
            else:
                tail = "; on_drift='respect': leaving the hand-made setting in place instead of restoring the baseline"
            return head + tail + " (pass on_drift='restore' to overwrite it)"
        return head + f"; on_drift='restore': overwriting it with {goal.describe()}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "expected": self.expected.to_dict(),
            "found": self.found.to_dict(),
            "policy": self.policy,
        }


@dataclass(frozen=True)
class Decision:
    """What to do to the deployment, decided from the lease document and the deployment's status.

    :param goal: the settings the deployment should have.
    :param body: the ``_update`` body that gives them, None when it already has them.
    :param doc: the document to write once the deployment has ``goal`` (baseline, drift and applied updated).
    """

    goal: Settings
    body: dict[str, Any] | None
    doc: LeaseDoc
    drift: Drift | None


def decide(
    doc: LeaseDoc, status: DeploymentStatus, policy: DriftPolicy, now: float, *, serverless: bool = False
) -> Decision:
    """Decide the deployment's settings from ``doc`` (already reaped) and its current ``status``.

    Drift (the deployment has none of the settings the leases gave it) under ``"respect"`` makes the
    hand-made setting the new baseline, so it is never lowered and is what the last release leaves; live
    leases still get at least what they asked for. Under ``"restore"`` the baseline stays and is restored.
    ``serverless``: see :func:`goal_settings`.
    """
    drift = None
    baseline = doc.baseline
    if not any(s.matches(status) for s in doc.expected()):
        found = Settings.of(status)
        drift = Drift(doc.deployment_id, doc.applied or doc.baseline, found, policy, now)
        if policy == "respect":
            baseline = found
    goal = goal_settings(baseline, doc.leases, serverless=serverless)
    history = doc.drift if drift is None else (*doc.drift, drift.to_dict())[-DRIFT_HISTORY:]
    new_doc = replace(doc, baseline=baseline, drift=history, applied=goal, pending=None)
    return Decision(goal, goal.update_body(status), new_doc, drift)
