"""LeaseStore: acquire, release and reap deployment leases kept in Elasticsearch, and apply their target.

Every operation runs the same steps on the deployment's lease document:

1. take the document's lock with a conditional write that also makes the operation's change (add or renew
   a lease, drop one) and drops expired leases; the first lease creates the document with the baseline read
   from the deployment (``op_type=create``, so two first leases cannot both record one);
2. read the deployment and :func:`~airflow_esml.leases.decisions.decide` its settings (drift policy included);
3. if they change: record them as ``pending`` (conditional write), then call ``_update``;
4. record them as ``applied`` and free the lock, or delete the document when no lease is left.

The lock (:mod:`airflow_esml.leases.lock`) makes the changes of one deployment happen one at a time, so a
release can never lower the target under a lease that an acquire has just added. A lock whose holder died
expires after ``lock_ttl``. Besides: :meth:`LeaseStore.renew` extends a live lease (the keeper's call),
:meth:`LeaseStore.set_baseline` records a plain update as the baseline, and a reaped lease leaves a trace
that makes its run's release fail (:class:`~airflow_esml.exceptions.LeaseLostError`).
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from airflow_esml.core import capacity
from airflow_esml.core.capacity import CapacityReport, CapacityUnchecked
from airflow_esml.core.params import (
    DEFAULT_ADAPTIVE_POLICY,
    DEFAULT_LEASES_INDEX,
    DEFAULT_LOCK_TTL,
    DriftPolicy,
    check_adaptive_policy,
    check_drift_policy,
    check_serverless_policy,
    parse_capacity_policy,
)
from airflow_esml.core.plan import UpdatePlan
from airflow_esml.core.settings import Settings
from airflow_esml.exceptions import InvalidParameterError, LeaseLockTimeoutError, LeaseLostError, LockLostError
from airflow_esml.leases.decisions import Decision, adaptive_refusal, decide
from airflow_esml.leases.document import LeaseDoc
from airflow_esml.leases.documents import LeaseDocuments
from airflow_esml.leases.lease import Lease
from airflow_esml.leases.lock import Change, DocumentLock, Held
from airflow_esml.leases.outcome import LeaseOutcome
from airflow_esml.leases.reaped import Reaped, Renewal, missing_lease

if TYPE_CHECKING:
    from airflow_esml.core.status import DeploymentStatus
    from airflow_esml.hooks.ml import ElasticsearchMLHook

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Fit:
    """The capacity check of an acquire: its lease, the ``capacity_policy`` and the ``autoscaling`` override."""

    lease_id: str
    policy: str
    autoscaling: bool | None = None


class LeaseStore(DocumentLock):
    """Deployment leases in one Elasticsearch index.

    :param hook: the hook whose client, retry policy and deployment calls are used.
    :param index: the lease index (a normal name: Elasticsearch restricts names starting with a dot).
    :param lock_ttl: seconds a lock lasts; must exceed the longest update (with retries) a holder makes.
    :param lock_wait: seconds an operation waits for a lock held by another one; default ``lock_ttl + 30``.
    :param clock: wall-clock time source (epoch seconds), the same on every worker (keep clocks in sync).
    """

    def __init__(
        self,
        hook: ElasticsearchMLHook,
        *,
        index: str = DEFAULT_LEASES_INDEX,
        lock_ttl: float = DEFAULT_LOCK_TTL,
        lock_wait: float | None = None,
        clock: Callable[[], float] = time.time,
        attempts: int = 5,
    ) -> None:
        self.hook = hook
        self.docs = LeaseDocuments(hook, index)
        self.lock_ttl = lock_ttl
        self.lock_wait = lock_ttl + 30.0 if lock_wait is None else lock_wait
        self.clock = clock
        self.attempts = attempts

    # -- which document ----------------------------------------------------------------------------------

    def leased_id(self, deployment_id: str) -> str:
        """The id of the physical deployment that ``deployment_id`` names: the id of its lease document.

        An inference endpoint attached to another deployment (``service_settings.deployment_id``) names that
        deployment, so a lease taken by the inference id and one taken by the deployment id share one document
        and one baseline. A trained-model deployment, and an endpoint that created its own deployment, keep their
        id. Resolved with the hook's
        :meth:`~airflow_esml.hooks.ml.ElasticsearchMLHook.target`, once per hook.
        """
        return self.hook.target(deployment_id).deployment_id

    def _shown(self, outcome: LeaseOutcome, deployment_id: str, lease_id: str | None) -> LeaseOutcome:
        """``outcome`` naming the id the caller passed, and the deployment leased."""
        leased = outcome.deployment_id if outcome.deployment_id != deployment_id else None
        return replace(outcome, deployment_id=deployment_id, lease_id=lease_id, leased_deployment_id=leased)

    # -- public operations ----------------------------------------------------------------------------

    def acquire(
        self,
        deployment_id: str,
        lease_id: str,
        allocations: int,
        *,
        ttl: float,
        owner: Mapping[str, Any] | None = None,
        on_drift: str = "respect",
        adaptive_policy: str = DEFAULT_ADAPTIVE_POLICY,
        capacity_policy: str | None = "off",
        autoscaling: bool | None = None,
    ) -> LeaseOutcome:
        """Add (or renew) a lease, then give the deployment ``max(baseline, every live lease)``.

        The baseline is recorded only by the first lease, so a retried acquire never takes the value it set
        itself for the baseline. If the deployment cannot be scaled, the lease is released again before the
        error is raised, so nothing is left behind.

        :param adaptive_policy: with a baseline that has adaptive allocations on: ``"raise_min"`` raises their
            minimum while leases are live, ``"disable"`` switches them off (refused on Serverless), ``"fail"``
            refuses the lease before anything is written.
        :param capacity_policy: before a scale-up, check it against the ML nodes (as
            :class:`~airflow_esml.operators.deployment.UpdateDeploymentOperator` does): ``"fail"`` refuses what
            can never fit, ``"fit"`` gives the lease what fits, ``"off"`` (default here) does not check.
        :param autoscaling: whether the cluster autoscales ML nodes; None reads its settings.
        """
        policy = check_drift_policy(on_drift)
        adaptive = check_adaptive_policy(adaptive_policy)
        checking = parse_capacity_policy(capacity_policy)
        if adaptive == "disable" and self.hook.is_serverless():
            check_serverless_policy(adaptive)
        requested, deployment_id = deployment_id, self.leased_id(deployment_id)
        if deployment_id != requested:
            log.info("%s: leases of deployment %s are kept under its id", requested, deployment_id)
        refused: list[str] = []

        def add(doc: LeaseDoc) -> LeaseDoc:
            refusal = adaptive_refusal(deployment_id, doc.baseline, adaptive) if doc.lease(lease_id) is None else None
            if refusal is not None:
                refused.append(refusal)
                raise InvalidParameterError(refusal)
            now = self.clock()
            if doc.lease(lease_id) is not None:
                log.info(
                    "%s: lease %s exists (a retry); renewing it, the baseline stays %s",
                    deployment_id,
                    lease_id,
                    doc.original_baseline.describe(),
                )
            return doc.with_lease(Lease(lease_id, allocations, now, now + ttl, dict(owner or {}), adaptive))

        try:
            fit = _Fit(lease_id, checking, autoscaling)
            outcome = self._run(deployment_id, add, policy, create=True, holder=lease_id, fit=fit)
        except LeaseLockTimeoutError:
            raise
        except InvalidParameterError:
            if refused:  # refused before anything was written: nothing to release
                raise
            log.warning("%s: acquiring lease %s failed; releasing it again", deployment_id, lease_id)
            self._release_quietly(deployment_id, lease_id, policy)
            raise
        except Exception:
            log.warning("%s: acquiring lease %s failed; releasing it again", deployment_id, lease_id)
            self._release_quietly(deployment_id, lease_id, policy)
            raise
        mine = next((x for x in outcome.leases if x.lease_id == lease_id), None)
        return replace(self._shown(outcome, requested, lease_id), lease=mine)

    def release(self, deployment_id: str, lease_id: str, *, on_drift: str = "respect") -> LeaseOutcome:
        """Drop a lease (if still there), then set the deployment from the leases left, or restore the baseline.

        A lease that is not there is fine when it left no trace (a retry of a release that succeeded). When it
        was reaped, the operation still puts the deployment in line with the leases left, then raises.

        :raises LeaseLostError: the lease was reaped: it expired without renewal while the run went on.
        """
        policy = check_drift_policy(on_drift)
        requested, deployment_id = deployment_id, self.leased_id(deployment_id)
        seen: list[LeaseDoc] = []

        def drop(doc: LeaseDoc) -> LeaseDoc:
            seen.append(doc)
            return doc.without_lease(lease_id)

        outcome = self._run(deployment_id, drop, policy, holder=lease_id)
        dropped = seen[-1].lease(lease_id) if seen else None
        if dropped is None:
            found = missing_lease(requested, lease_id, self._traces(deployment_id, seen[-1] if seen else None))
            if found.state == "lost":
                raise LeaseLostError(found.message)
        released_at = seen[-1].accrued_at if dropped is not None else None
        return replace(self._shown(outcome, requested, lease_id), released=dropped, released_at=released_at)

    def renew(self, deployment_id: str, lease_id: str, ttl: float) -> Renewal:
        """Extend a live lease to ``now + ttl`` with one conditional write that does not touch the deployment.

        Waits (up to ``lock_wait``) while another operation holds the lock, so that it never disturbs one. A
        lease past its expiry but not yet reaped is renewed: nothing was taken from it.
        """
        shown, deployment_id = deployment_id, self.leased_id(deployment_id)
        deadline = self.clock() + self.lock_wait
        pause = 0.02
        while True:
            stored = self.docs.get(deployment_id)
            now = self.clock()
            if stored is None or stored.doc.lease(lease_id) is None:
                return missing_lease(shown, lease_id, self._traces(deployment_id, stored.doc if stored else None))
            if not stored.doc.lock_held(now):
                doc = replace(stored.doc.with_renewed(lease_id, now + ttl), write_id=uuid.uuid4().hex)
                landed = self.docs.replace(doc, stored.version) is not None
                if landed or self._holds_write(deployment_id, doc.write_id):
                    return Renewal("renewed", f"{shown}: lease {lease_id} renewed", now + ttl)
            elif now > deadline:
                raise LeaseLockTimeoutError(f"{deployment_id}: the lease document stayed locked {self.lock_wait:.0f}s")
            time.sleep(random.uniform(0, pause))
            pause = min(pause * 2, 1.0)

    def set_baseline(self, deployment_id: str, baseline: Settings) -> LeaseOutcome | None:
        """Make ``baseline`` what the deployment has when no lease is live (an explicit update, not drift).

        Under the lock: the deployment gets ``max(baseline, every live lease)`` at once, and ``baseline`` when
        the last lease ends. None, with nothing done, when the deployment has no lease document.
        """
        key = self.leased_id(deployment_id)
        outcome = self._run(key, lambda doc: doc.with_baseline(baseline), "restore", holder="update")
        return None if outcome.goal is None else self._shown(outcome, deployment_id, None)

    def _traces(self, deployment_id: str, doc: LeaseDoc | None) -> tuple[Reaped, ...]:
        """The reap records of the deployment: those in its lease document, and those kept after its deletion."""
        return (*(doc.reaped_leases if doc else ()), *self.docs.tombstones(deployment_id))

    def _holds_write(self, deployment_id: str, write_id: str) -> bool:
        """After a conflict: did our write land anyway (its answer was lost)?"""
        current = self.docs.get(deployment_id)
        return current is not None and current.doc.write_id == write_id

    def reconcile(self, deployment_id: str, *, on_drift: str = "respect") -> LeaseOutcome:
        """Reap expired leases and set the deployment from the live ones (restoring it when none is left)."""
        policy = check_drift_policy(on_drift)
        outcome = self._run(self.leased_id(deployment_id), lambda doc: doc, policy, holder="reaper")
        return self._shown(outcome, deployment_id, None)

    def deployment_ids(self) -> list[str]:
        return self.docs.deployment_ids()

    def read(self, deployment_id: str) -> LeaseDoc | None:
        """The lease document of the deployment ``deployment_id`` names (see :meth:`leased_id`), or None."""
        stored = self.docs.get(self.leased_id(deployment_id))
        return stored.doc if stored else None

    # -- the steps ------------------------------------------------------------------------------------

    def _release_quietly(self, deployment_id: str, lease_id: str, policy: DriftPolicy) -> None:
        try:
            self._run(deployment_id, lambda doc: doc.without_lease(lease_id), policy, holder=lease_id)
        except Exception as exc:  # the lease expires on its own; the original error matters more
            log.warning("%s: could not release lease %s (%s); it will expire", deployment_id, lease_id, exc)

    def _run(
        self,
        deployment_id: str,
        change: Change,
        policy: DriftPolicy,
        *,
        holder: str,
        create: bool = False,
        fit: _Fit | None = None,
    ) -> LeaseOutcome:
        """Lock, change, decide and apply; ``fit`` (a lease id and a capacity policy) checks a scale-up first."""
        for attempt in range(1, self.attempts + 1):
            try:
                held = self._lock(deployment_id, change, create=create, holder=holder)
                if held is None:
                    log.info("%s: no lease document; nothing to do", deployment_id)
                    return LeaseOutcome(deployment_id, None, None, None, None)
                return self._settle(held, policy, fit)
            except LockLostError as exc:
                log.warning("%s: %s (attempt %d of %d)", deployment_id, exc, attempt, self.attempts)
        raise LockLostError(f"{deployment_id}: lost the lease lock {self.attempts} times in a row")

    def _settle(self, held: Held, policy: DriftPolicy, fit: _Fit | None = None) -> LeaseOutcome:
        """With the lock held: decide, apply, then record and unlock (or delete the document)."""
        doc = held.stored.doc
        checked: dict[str, Any] | None = None
        try:
            serverless = self.hook.is_serverless()
            status = self.hook.get_deployment(doc.deployment_id)
            decision = decide(doc, status, policy, self.clock(), serverless=serverless)
            if decision.body is not None and status.state == "starting":
                status = self._started(status)
                decision = decide(doc, status, policy, self.clock(), serverless=serverless)
            if fit is not None and decision.body is not None:
                decision, checked = self._fit(decision, status, fit, serverless)
            decision = replace(decision, doc=decision.doc.with_reap_target(decision.goal))
            self._report(decision)
            if decision.body is not None:
                holder = doc.lock.holder if doc.lock else ""
                # the adopted baseline and drift record travel with the pending settings; applied stays as it was
                pending = replace(decision.doc, applied=doc.applied, pending=decision.goal)
                self._write(held, replace(pending, lock=self._new_lock(held.token, holder)))
                self._check_lock(held)
                log.info(
                    "%s: setting %s (%d live lease(s))", doc.deployment_id, decision.goal.describe(), len(doc.leases)
                )
                self.hook.update_deployment(doc.deployment_id, **decision.body)
        except LockLostError:
            raise
        except Exception:
            self._unlock_quietly(held)
            raise
        restored = self._finish(held, decision)
        return LeaseOutcome(
            doc.deployment_id,
            None,
            decision.doc.baseline,
            doc.original_baseline,
            decision.goal,
            changed=decision.body is not None,
            leases=decision.doc.leases,
            reaped=held.reaped,
            restored=restored,
            drift=decision.drift.to_dict() if decision.drift else None,
            capacity=checked,
        )

    def _fit(
        self, decision: Decision, status: DeploymentStatus, fit: _Fit, serverless: bool
    ) -> tuple[Decision, dict[str, Any] | None]:
        """Check the scale-up of an acquire against the ML nodes, as UpdateDeploymentOperator does.

        ``fail``: raise before the update (the caller releases the lease); ``fit``: the lease gets what fits.
        """
        policy = fit.policy
        raised = decision.goal.adaptive_enabled and "number_of_allocations" not in (decision.body or {})
        plan = UpdatePlan(status, decision.body, raised)
        if not capacity.needs_check(plan, policy):
            return decision, None
        if serverless:  # its _nodes, _ml/info and _cluster/settings answer 410; the project autoscales
            report: CapacityReport | CapacityUnchecked = capacity.serverless_unchecked(status.deployment_id)
        else:
            report = self.hook.get_capacity(status, fit.autoscaling)
        fitted, found = capacity.apply_capacity(plan, report, policy)
        (log.warning if found.warn else log.info)("%s", found.message)
        if not found.capped:
            return decision, found.to_dict()
        goal = fitted.new_settings
        if goal.adaptive_enabled and goal.adaptive_allocations is not None:
            goal = Settings(goal.adaptive_allocations.min_number_of_allocations, goal.adaptive_allocations)
        doc = replace(decision.doc.with_allocations(fit.lease_id, found.allowed), applied=goal)
        return replace(decision, goal=goal, body=fitted.body, doc=doc), found.to_dict()

    def _started(self, status: DeploymentStatus) -> DeploymentStatus:
        """The deployment's status, once it is ``started`` (Elasticsearch refuses updates while it is ``starting``,
        which it can be again for a moment when a scale-down removes its only started route).

        Waits at most a third of ``lock_ttl``; after that the status is returned as it is.
        """
        deployment_id = status.deployment_id
        deadline = self.clock() + self.lock_ttl / 3
        pause = 0.1
        while status.state == "starting" and self.clock() < deadline:
            log.info("%s: deployment is starting; waiting until it is started before changing it", deployment_id)
            time.sleep(pause)
            pause = min(pause * 2, 2.0)
            status = self.hook.get_deployment(deployment_id)
        return status

    def _report(self, decision: Decision) -> None:
        doc = decision.doc
        if decision.drift is not None:
            log.warning("%s", decision.drift.message(decision.goal, len(doc.leases)))
        original = (doc.original_baseline, doc.original_baseline.adaptive_form())  # the latter on Serverless
        if not doc.leases and decision.goal not in original and decision.drift is None:
            log.warning(
                "%s: restoring %s (adopted after a hand-made change), not %s recorded before the first lease",
                doc.deployment_id,
                decision.goal.describe(),
                doc.original_baseline.describe(),
            )

    def _finish(self, held: Held, decision: Decision) -> bool:
        """Record the applied settings and unlock; delete the document when no lease is left."""
        final = replace(decision.doc, lock=None)
        if final.leases:
            self._write(held, final)
            return False
        if final.reaped_leases:  # the traces of reaped leases outlive the document, for their runs' releases
            self.docs.keep_tombstones(final.deployment_id, final.reaped_leases, self.clock())
        deleted = self.docs.delete(final.deployment_id, held.stored.version)
        if not deleted and self.docs.get(final.deployment_id) is not None:
            raise LockLostError("the lease document changed while it was locked")
        log.info("%s: no lease left; the deployment has %s", final.deployment_id, decision.goal.describe())
        return True
