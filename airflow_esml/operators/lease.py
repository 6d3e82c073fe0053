"""Operators for deployment leases: acquire (scale up), release (scale down or restore) and reap.

A lease is one DAG run's claim on a deployment, kept in Elasticsearch (see ``docs/leases.md``). Its id is
made of the DAG id, the run id and ``lease_name``, so every try of the run's tasks uses the same lease, and
the release task finds it without any XCom. The lease store loads the ``elasticsearch`` client, so it is
imported when a task runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.common.compat.sdk import BaseOperator, BaseSensorOperator, conf

from airflow_esml.core.params import (
    DEFAULT_ADAPTIVE_POLICY,
    DEFAULT_CONN_ID,
    DEFAULT_LEASE_TTL,
    DEFAULT_LEASES_INDEX,
    DEFAULT_LOCK_TTL,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_TIMEOUT,
    KEEPER_TIMEOUT,
    check_adaptive_policy,
    check_drift_policy,
    check_id,
    parse_capacity_policy,
    parse_renew_interval,
    positive_int,
    seconds,
)
from airflow_esml.exceptions import EsmlError, LeaseLostError
from airflow_esml.links import TrainedModelsLink
from airflow_esml.operators import accounting as window
from airflow_esml.operators.base import ElasticsearchMLTaskMixin
from airflow_esml.operators.waiting import AllocationsWaitMixin

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_esml.leases.outcome import LeaseOutcome
    from airflow_esml.leases.store import LeaseStore
    from airflow_esml.triggers.lease import LeaseKeeperTrigger

T = TypeVar("T")


class _LeaseOperator(ElasticsearchMLTaskMixin, BaseOperator):
    """What the lease operators share: connection, lease index, drift policy and the store."""

    deployment_id: str  # set by the operators that take leases (the reaper works on every deployment)

    def __init__(
        self,
        *,
        elasticsearch_conn_id: str = DEFAULT_CONN_ID,
        leases_index: str = DEFAULT_LEASES_INDEX,
        on_drift: str = "respect",
        lock_ttl: float = DEFAULT_LOCK_TTL,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.elasticsearch_conn_id = elasticsearch_conn_id
        self.leases_index = leases_index
        self.on_drift = check_drift_policy(on_drift)
        self.lock_ttl = seconds("lock_ttl", lock_ttl)

    @cached_property
    def store(self) -> LeaseStore:
        from airflow_esml.leases.store import LeaseStore  # loads the elasticsearch client

        return LeaseStore(self.hook, index=self.leases_index, lock_ttl=self.lock_ttl)

    def lease_owner(self, context: Context) -> dict[str, Any]:
        """Who takes a lease: the DAG, run, task and try (for logs and the reaper)."""
        return {
            "dag_id": self.dag_id,
            "run_id": context.get("run_id"),
            "task_id": self.task_id,
            "try_number": getattr(context.get("ti"), "try_number", None),
        }

    def take_lease(
        self, lease_id: str, allocations: int, context: Context, *, ttl: float, deploy_within: float, **policies: Any
    ) -> tuple[LeaseOutcome, dict[str, Any]]:
        """Acquire (or renew) ``lease_id``: deploy a default inference endpoint that has none yet, open the capacity
        window, then take the lease; the store's outcome and the XCom result (with the API that scales the id)."""
        target = self.scaled_target(self.deployment_id, deploy_within=deploy_within)
        owner = self.lease_owner(context)
        owner[window.LEASE_OWNER_KEY] = window.lease_opening(self.hook, self.store, self.deployment_id, lease_id)
        outcome = self.store.acquire(
            self.deployment_id, lease_id, allocations, ttl=ttl, owner=owner, on_drift=self.on_drift, **policies
        )
        return outcome, {**outcome.to_dict(), **target.to_xcom()}

    def release_lease(
        self, lease_id: str, context: Context | None = None, *, wait_task_id: str | None = None
    ) -> dict[str, Any]:
        """Release ``lease_id`` and close its capacity window; the XCom result (with the API that scales the id).

        :param lease_id: the lease to release (one that left no trace is not an error).
        :param context: the task's context, to read the XCom of ``wait_task_id``.
        :param wait_task_id: the task of this run that waited for the lease's allocations: when it saw them
            started ends the window's loading time.
        """
        ending = window.lease_ending(self.hook, self.store, self.deployment_id, lease_id)  # before capacity goes
        result = self.store.release(self.deployment_id, lease_id, on_drift=self.on_drift).to_dict()
        result.update(self.scaled_target(self.deployment_id).to_xcom())
        ready_at = window.ready_at_from(context, wait_task_id)
        result[window.USAGE_KEY] = window.close_lease_window(ending, result, ready_at=ready_at, task_log=self.log)
        return result


class _RunLeaseOperator(_LeaseOperator):
    """A lease operator that acts on this run's lease of one deployment; it links to the deployment in Kibana
    when the connection has a ``kibana_url`` extra."""

    operator_extra_links = (TrainedModelsLink(),)

    def __init__(self, *, deployment_id: str, lease_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deployment_id = deployment_id
        self.lease_name = lease_name

    def lease_id(self, context: Context) -> str:
        """``<dag_id>/<run_id>/<lease_name>``, after ``<installation_id>:`` when ``[esml] installation_id`` is set;
        the lease name defaults to the deployment id.

        Every run lease operator asks for it before its first request, so an empty ``deployment_id`` (after
        templating) is refused here, before anything in the cluster changes.
        """
        from airflow_esml.leases.lease import lease_id_for

        check_id("deployment_id", self.deployment_id)
        name = self.lease_name or self.deployment_id
        return lease_id_for(self.dag_id, context["run_id"], name, self.installation_id)


class AcquireDeploymentLeaseOperator(AllocationsWaitMixin, _RunLeaseOperator):
    """Take (or renew) this run's lease on a deployment and scale it to ``max(baseline, every live lease)``.

    The first lease records the deployment's settings (adaptive allocations included) as the baseline; a
    retry of this task finds its lease and keeps that baseline. If the deployment cannot be scaled, or the
    wait fails, the lease is released again before the task fails (a failed setup does not run its teardown).
    The XCom result has the lease id, the baseline and the target.

    :param deployment_id: the deployment, or an inference endpoint id. (templated)
    :param number_of_allocations: the allocations this run needs. (templated)
    :param lease_name: tells apart several leases of one run on one deployment; default the deployment id.
        (templated)
    :param lease_ttl: how long the lease lasts if the run dies without releasing it (seconds or timedelta);
        make it longer than the work. A later acquire, release or :class:`ReapDeploymentLeasesOperator`
        then reaps it.
    :param leases_index: the Elasticsearch index of the lease documents. (templated)
    :param on_drift: ``"respect"`` (default) keeps a setting changed by hand while leases are held as the new
        baseline; ``"restore"`` overwrites it. Either way a WARNING says what happened.
    :param lock_ttl: seconds the lease document's lock lasts if its holder dies.
    :param wait_for_completion: wait until ``number_of_allocations`` allocations are started.
    :param deferrable: wait in the triggerer; defaults to ``[operators] default_deferrable``.
    :param poll_interval: seconds between two looks at the deployment while waiting.
    :param timeout: seconds to wait for the allocations.
    :param adaptive_policy: when the baseline has adaptive allocations on: ``"raise_min"`` (default) raises
        ``min_number_of_allocations`` to the lease's allocations (and ``max_number_of_allocations`` when it is
        lower) while leases are live, keeping them on; the last release puts back the previous min and max.
        ``"disable"`` switches them off for the leases (refused on Serverless); ``"fail"`` refuses the lease
        before anything changes. Ignored for a deployment without adaptive allocations.
    :param capacity_policy: before a scale-up, check it against the ML nodes, as
        :class:`~airflow_esml.operators.deployment.UpdateDeploymentOperator` does: ``"fail"`` (default) refuses
        a request that can never fit, before anything changes; ``"fit"`` gives the lease what fits (the XCom
        ``granted_allocations`` and ``capacity`` say so); ``"off"`` or None sends it unchecked.
    :param autoscaling: whether the cluster autoscales ML nodes; None (default) reads its settings.
    """

    template_fields: Sequence[str] = (
        "deployment_id",
        "number_of_allocations",
        "lease_name",
        "leases_index",
        "elasticsearch_conn_id",
    )
    ui_color = "#b8e3f5"

    def __init__(
        self,
        *,
        number_of_allocations: int | str,
        lease_ttl: float | timedelta = DEFAULT_LEASE_TTL,
        wait_for_completion: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
        adaptive_policy: str = DEFAULT_ADAPTIVE_POLICY,
        capacity_policy: str | None = "fail",
        autoscaling: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.adaptive_policy = check_adaptive_policy(adaptive_policy)
        self.capacity_policy = parse_capacity_policy(capacity_policy)
        self.autoscaling = autoscaling
        self.number_of_allocations = number_of_allocations
        self.lease_ttl = seconds("lease_ttl", lease_ttl)
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = seconds("poll_interval", poll_interval)
        self.timeout = seconds("timeout", timeout)

    def execute(self, context: Context) -> dict[str, Any]:
        allocations = positive_int("number_of_allocations", self.number_of_allocations)
        lease_id = self.lease_id(context)
        self.persist_kibana_link(context, self.deployment_id)
        result = self._acquire(lease_id, allocations, context)
        self._log_acquired(lease_id, allocations, result)
        if self.wait_for_completion:
            granted = result["granted_allocations"]
            result["deployment"] = self._guarded(
                context, lambda: self.wait_for_allocations(granted, kwargs={"result": result})
            )
        return result

    def _acquire(self, lease_id: str, allocations: int, context: Context) -> dict[str, Any]:
        """Take the lease under this task's policies; the XCom result, with the allocations asked for and granted."""
        outcome, result = self.take_lease(
            lease_id,
            allocations,
            context,
            ttl=self.lease_ttl,
            deploy_within=self.timeout,
            adaptive_policy=self.adaptive_policy,
            capacity_policy=self.capacity_policy,
            autoscaling=self.autoscaling,
        )
        result["requested_allocations"] = allocations
        result["granted_allocations"] = outcome.lease.allocations if outcome.lease else allocations
        return result

    def _log_acquired(self, lease_id: str, allocations: int, result: dict[str, Any]) -> None:
        """Log what the lease holds and what the deployment's target became."""
        self.log.info(
            "%s: lease %s holds %d allocations; the deployment's target is %s (baseline %s)",
            self.deployment_id,
            lease_id,
            allocations,
            result["number_of_allocations"],
            result["original_baseline"],
        )

    def _guarded(self, context: Context, wait: Callable[[], T]) -> T:
        """Run ``wait``; if it fails, release the lease before failing (the teardown would not run)."""
        try:
            return wait()
        except Exception:
            self._roll_back(context)
            raise

    def _roll_back(self, context: Context) -> None:
        lease_id = self.lease_id(context)
        self.log.warning("%s: the wait failed; releasing lease %s", self.deployment_id, lease_id)
        try:
            self.store.release(self.deployment_id, lease_id, on_drift=self.on_drift)
        except Exception as exc:
            self.log.warning("%s: could not release lease %s (%s); it will expire", self.deployment_id, lease_id, exc)

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, result: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Resume after the trigger's event; a failed wait releases the lease before failing."""
        deployment = self._guarded(context, lambda: self.resumed_status(event))
        return {**(result or {}), "deployment": deployment}


class KeepDeploymentLeaseOperator(_RunLeaseOperator, BaseSensorOperator):
    """Keep this run's lease alive while the run's work goes on: renew it until it is released.

    In :func:`~airflow_esml.lifecycle.scaled_deployment` this is the ``keep_lease`` task, downstream of
    ``acquire`` and beside the work (not upstream of ``release``). Each renewal extends the lease to now +
    ``lease_ttl`` without touching the deployment. The task succeeds within one ``renew_interval`` of the
    release, and fails with :class:`~airflow_esml.exceptions.LeaseLostError` if it finds the lease reaped
    (it expired without renewal, so the deployment may have been scaled down under the work). When the run
    dies, renewals stop and the lease expires ``lease_ttl`` later, to be reaped.

    Deferrable: renews from the triggerer (:class:`~airflow_esml.triggers.lease.LeaseKeeperTrigger`), holding
    no worker slot. Otherwise a sensor in ``reschedule`` mode: each poke renews, then frees its slot until the
    next one. Under ``dag.test()``, which runs tasks one after another and a trigger inline until it ends,
    a keeper could only block the run: it renews once and ends.

    :param deployment_id: the deployment, or an inference endpoint id. (templated)
    :param lease_name: the lease name given to the acquire task; default the deployment id. (templated)
    :param lease_ttl: the lease's time to live, as given to the acquire task (seconds or timedelta).
    :param renew_interval: seconds between two renewals; default a third of ``lease_ttl``, between 1 and 60 s.
        At most half of ``lease_ttl``.
    :param deferrable: renew from the triggerer; defaults to ``[operators] default_deferrable``.
    """

    template_fields: Sequence[str] = ("deployment_id", "lease_name", "leases_index", "elasticsearch_conn_id")
    ui_color = "#e0f0f8"

    def __init__(
        self,
        *,
        lease_ttl: float | timedelta = DEFAULT_LEASE_TTL,
        renew_interval: float | timedelta | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        ttl = seconds("lease_ttl", lease_ttl)
        interval = parse_renew_interval(ttl, renew_interval)
        kwargs.setdefault("timeout", KEEPER_TIMEOUT)
        super().__init__(poke_interval=interval, mode="reschedule", **kwargs)
        self.lease_ttl = ttl
        self.renew_interval = interval
        self.deferrable = deferrable

    def execute(self, context: Context) -> Any:
        self.persist_kibana_link(context, self.deployment_id)
        if _triggers_run_inline():
            self.log.info("%s: dag.test() runs tasks one at a time: renewing the lease once", self.deployment_id)
            self.poke(context)
            return None
        if self.deferrable and not self.poke(context):
            self.defer(trigger=self._keeper_trigger(context), method_name="execute_complete")
        return None if self.deferrable else super().execute(context)

    def _keeper_trigger(self, context: Context) -> LeaseKeeperTrigger:
        """The trigger that renews this run's lease from the triggerer."""
        from airflow_esml.triggers.lease import LeaseKeeperTrigger  # loads Airflow's trigger machinery

        return LeaseKeeperTrigger(
            deployment_id=self.deployment_id,
            lease_id=self.lease_id(context),
            elasticsearch_conn_id=self.elasticsearch_conn_id,
            leases_index=self.leases_index,
            lease_ttl=self.lease_ttl,
            renew_interval=self.renew_interval,
            lock_ttl=self.lock_ttl,
        )

    def poke(self, context: Context) -> bool:
        """Renew the lease once: False while it is live, True once it is released.

        :raises LeaseLostError: it was reaped. Other errors are logged: the next poke renews.
        """
        lease_id = self.lease_id(context)
        try:
            renewal = self.store.renew(self.deployment_id, lease_id, self.lease_ttl)
        except EsmlError as exc:
            self.log.warning("%s: renewing lease %s failed (%s); trying again", self.deployment_id, lease_id, exc)
            return False
        if renewal.state == "lost":
            raise LeaseLostError(renewal.message)
        self.log.info("%s", renewal.message)
        return renewal.state == "released"

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> None:
        """Resume after the trigger's event: done when the lease was released, failed when it was reaped."""
        event = event or {}
        if event.get("state") == "lost":
            raise LeaseLostError(str(event.get("message")))
        if event.get("status") != "success":
            raise EsmlError(f"{self.deployment_id}: the lease keeper ended unexpectedly: {event}")
        self.log.info("%s", event.get("message"))


def _triggers_run_inline() -> bool:
    """True under ``dag.test()``, whose in-process supervisor runs each task, and each trigger, to its end."""
    try:
        from airflow.sdk.execution_time import task_runner
        from airflow.sdk.execution_time.supervisor import InProcessSupervisorComms
    except ImportError:
        return False
    return isinstance(getattr(task_runner, "SUPERVISOR_COMMS", None), InProcessSupervisorComms)


class ReleaseDeploymentLeaseOperator(_RunLeaseOperator):
    """Release this run's lease: the deployment gets ``max(baseline, the leases left)``, or its baseline back.

    Meant as a teardown (``as_teardown(setups=acquire)``), so it runs even when the work failed. Releasing a
    lease that left no trace (a retry of a release that succeeded) is not an error; releasing one that was
    reaped while the run went on fails with :class:`~airflow_esml.exceptions.LeaseLostError`, saying when it
    was reaped and what the deployment's target was then. The XCom result says what was set and
    whether the baseline was restored (``restored``) or a drift was found (``drift``).

    :param deployment_id: the deployment, or an inference endpoint id. (templated)
    :param lease_name: the lease name given to the acquire task; default the deployment id. (templated)
    :param leases_index: the Elasticsearch index of the lease documents. (templated)
    :param on_drift: ``"respect"`` (default) or ``"restore"``; see :class:`AcquireDeploymentLeaseOperator`.
    :param wait_task_id: the task of this run that waited for the lease's allocations (``scaled_deployment``
        sets it): when it saw them started ends the window's loading time. The lease's window of capacity
        above the baseline ends here: the XCom result's ``capacity_usage`` (also one log line and Airflow's
        ``Stats``) says what it cost and how busy it was (docs/accounting.md).
    """

    template_fields: Sequence[str] = ("deployment_id", "lease_name", "leases_index", "elasticsearch_conn_id")
    ui_color = "#d0e6f0"

    def __init__(self, *, wait_task_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.wait_task_id = wait_task_id

    def execute(self, context: Context) -> dict[str, Any]:
        lease_id = self.lease_id(context)
        self.persist_kibana_link(context, self.deployment_id)
        result = self.release_lease(lease_id, context, wait_task_id=self.wait_task_id)
        self._log_released(lease_id, result)
        return result

    def _log_released(self, lease_id: str, result: dict[str, Any]) -> None:
        """Log what the release did: nothing (a retry), the baseline restored, or the leases left."""
        if result["target"] is None:
            self.log.info(
                "%s: lease %s left no trace: it was already released (a retry); nothing to do",
                self.deployment_id,
                lease_id,
            )
        elif result["restored"]:
            self.log.info("%s: last lease released; the deployment has %s", self.deployment_id, result["target"])
        else:
            self.log.info(
                "%s: lease %s released; %d lease(s) left, target %s",
                self.deployment_id,
                lease_id,
                len(result["leases"]),
                result["target"],
            )


class ReapDeploymentLeasesOperator(_LeaseOperator):
    """Reap expired leases and put each deployment back in line with its live leases (a maintenance task).

    Schedule it (for example hourly) so that a run that died without its teardown does not leave a
    deployment scaled up longer than its lease's TTL. Deployments with no live lease get their baseline back.
    The XCom result maps each deployment id to what was done.

    :param deployment_ids: the deployments to check; default every deployment with a lease document.
        (templated)
    :param leases_index: the Elasticsearch index of the lease documents. (templated)
    :param on_drift: ``"respect"`` (default) or ``"restore"``.
    """

    template_fields: Sequence[str] = ("deployment_ids", "leases_index", "elasticsearch_conn_id")
    ui_color = "#e8eef2"

    def __init__(self, *, deployment_ids: Sequence[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deployment_ids = deployment_ids

    def execute(self, context: Context) -> dict[str, Any]:
        ids = list(self.deployment_ids) if self.deployment_ids else self.store.deployment_ids()
        results: dict[str, Any] = {}
        failures: list[str] = []
        for deployment_id in ids:
            try:
                reconciled = self.store.reconcile(deployment_id, on_drift=self.on_drift)
            except Exception as exc:
                self.log.error("%s: reaping failed: %s", deployment_id, exc)
                failures.append(f"{deployment_id}: {exc}")
                continue
            results[deployment_id] = self._reaped(deployment_id, reconciled)
        if failures:
            raise EsmlError("reaping failed for " + "; ".join(failures))
        return results

    def _reaped(self, deployment_id: str, reconciled: LeaseOutcome) -> dict[str, Any]:
        """Log what reconciling ``deployment_id`` did; its entry in the XCom result."""
        entry = reconciled.to_dict()
        self.log.info(
            "%s: %d lease(s) reaped, %d live; target %s",
            deployment_id,
            len(reconciled.reaped),
            len(reconciled.leases),
            reconciled.goal.describe() if reconciled.goal else "unchanged (no lease document)",
        )
        return entry
