"""UpdateDeploymentOperator: set a deployment's allocations, optionally waiting until they are started."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_esml.core.params import (
    DEFAULT_ADAPTIVE_POLICY,
    DEFAULT_CONN_ID,
    DEFAULT_LEASES_INDEX,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_TIMEOUT,
    check_adaptive_policy,
    check_id,
    parse_capacity_policy,
    parse_max_step,
    parse_settings,
    seconds,
)
from airflow_esml.exceptions import AllocationsTimeoutError, DeploymentFailedError, EsmlError
from airflow_esml.links import TrainedModelsLink
from airflow_esml.operators import accounting as window
from airflow_esml.operators.waiting import AllocationsWaitMixin

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_esml.core import accounting
    from airflow_esml.core.capacity import CapacityReport, CapacityUnchecked
    from airflow_esml.core.plan import UpdatePlan
    from airflow_esml.core.readiness import Verdict, WaitWindow
    from airflow_esml.core.settings import Settings
    from airflow_esml.core.steps import Step
    from airflow_esml.core.target import Target
    from airflow_esml.leases.store import LeaseStore


class UpdateDeploymentOperator(AllocationsWaitMixin, BaseOperator):
    """Set a trained-model deployment's ``number_of_allocations`` or its adaptive-allocations settings.

    The deployment is read first: if it already has the requested setting, nothing is sent and the task
    succeeds (it never skips, so a teardown tied to it still runs). Inputs are validated after templating
    and before any call that changes the cluster. The XCom result holds the previous settings
    (``previous_number_of_allocations``, ``previous_adaptive_allocations``) and the new ones, so a later
    task can restore exactly what was there.

    :param deployment_id: the deployment to change (the model id when it was started without one), or an inference
        endpoint id: its deployment is changed through the API that owns it, and a default endpoint not yet deployed
        is deployed first (see ``docs/inference-endpoints.md``). (templated)
    :param number_of_allocations: the new total number of allocations. (templated)
    :param adaptive_allocations: new adaptive-allocations settings, e.g.
        ``{"enabled": True, "min_number_of_allocations": 1, "max_number_of_allocations": 8}``. Give exactly one
        of this and ``number_of_allocations``. (templated)
    :param elasticsearch_conn_id: the Airflow connection to the cluster. (templated)
    :param adaptive_policy: what to do when ``number_of_allocations`` is given but the deployment has adaptive
        allocations enabled: ``"raise_min"`` (default) raises ``min_number_of_allocations`` to the count (and
        ``max_number_of_allocations`` when it is lower), keeping adaptive allocations on; a paired scale-down
        passes the XCom ``previous_adaptive_allocations`` as ``adaptive_allocations`` to put back the previous
        min and max exactly. ``"fail"`` refuses before changing anything; ``"disable"`` switches adaptive
        allocations off and sets the count in the same call (refused on Serverless, where they are always on).
        Ignored for a deployment without adaptive allocations.
    :param wait_for_completion: wait until the new allocations are started; the XCom result then also holds
        the deployment's ``metrics`` (throughput, average inference time, pending requests per allocation).
    :param deferrable: wait in the triggerer instead of a worker slot; defaults to
        ``[operators] default_deferrable``.
    :param poll_interval: seconds between two looks at the deployment while waiting (above 0).
    :param timeout: seconds to wait for the allocations before failing (for ``max_step``: all steps together);
        each look's stats request is capped by the time left, so a cluster that does not answer fails the wait
        at ``timeout`` (plus at most one short last look).
    :param max_step: change the count gradually, at most this many allocations per update, waiting for each
        step's allocations to be started before the next (in both directions; deferrable between steps). The
        XCom result lists the ``steps``. None (default) changes it in one update.
    :param capacity_policy: before a scale-up, read the ML nodes' allocated processors and what other
        deployments use; when the request does not fit: ``"fail"`` (default) refuses before any change, saying
        how many allocations fit and why; ``"fit"`` scales to what fits and says so (XCom ``capacity``);
        ``"off"`` or None sends the request unchecked. Autoscaling clusters are never refused. When a monitoring
        API the check reads is refused (403 for a key without ``monitor``, 404 from a proxy, 410), the task
        logs that it could not check and why, scales as requested, and records ``{"checked": False, "reason":
        ...}`` in XCom ``capacity``.
    :param autoscaling: whether the cluster autoscales ML nodes; None (default) reads
        ``xpack.ml.max_lazy_ml_nodes`` and ``xpack.ml.max_ml_node_size`` from the cluster settings.
    :param honour_leases: when runs hold leases on the deployment (``scaled_deployment``), never cut capacity
        under them: the request becomes the deployment's baseline, which it gets when the last lease ends; a
        request above the leases applies at once. The XCom result then has a ``leases`` entry. ``max_step``
        does not apply to such an update (the lease store makes it in one call, under the leases' lock).
    :param leases_index: the Elasticsearch index of the lease documents.
    :param scale_up_task_id: on a scale-down, the id of the ``UpdateDeploymentOperator`` of this run that scaled
        up: its window of capacity above the baseline ends here, once the scale-down is sent (a try whose
        scale-down fails reports nothing, so a retry reports the window once), and the XCom result's
        ``capacity_usage`` (also one log line and Airflow's ``Stats``) says what it cost and how busy it was
        (docs/accounting.md). A scale-up always records the opening of its window (XCom ``accounting``).
    """

    template_fields: Sequence[str] = (
        "deployment_id",
        "number_of_allocations",
        "adaptive_allocations",
        "elasticsearch_conn_id",
    )
    operator_extra_links = (TrainedModelsLink(),)
    template_fields_renderers = {"adaptive_allocations": "json"}
    ui_color = "#b8e3f5"

    def __init__(
        self,
        *,
        deployment_id: str,
        number_of_allocations: int | str | None = None,
        adaptive_allocations: dict[str, Any] | str | None = None,
        elasticsearch_conn_id: str = DEFAULT_CONN_ID,
        adaptive_policy: str = DEFAULT_ADAPTIVE_POLICY,
        wait_for_completion: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
        max_step: int | str | None = None,
        capacity_policy: str | None = "fail",
        autoscaling: bool | None = None,
        honour_leases: bool = True,
        leases_index: str = DEFAULT_LEASES_INDEX,
        scale_up_task_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.scale_up_task_id = scale_up_task_id
        self._capacity: dict[str, Any] = {}
        self._window_end: tuple[Mapping[str, Any], dict[str, accounting.NodeWork] | None] | None = None
        self.honour_leases = honour_leases
        self.leases_index = leases_index
        self.max_step = max_step
        self.capacity_policy = capacity_policy
        self.autoscaling = autoscaling
        self.deployment_id = deployment_id
        self.number_of_allocations = number_of_allocations
        self.adaptive_allocations = adaptive_allocations
        self.elasticsearch_conn_id = elasticsearch_conn_id
        self.adaptive_policy = check_adaptive_policy(adaptive_policy)
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = seconds("poll_interval", poll_interval)
        self.timeout = seconds("timeout", timeout)
        if deferrable and not wait_for_completion:
            self.log.warning("%s: deferrable=True has no effect without wait_for_completion=True", self.task_id)

    def execute(self, context: Context) -> dict[str, Any]:
        record = window.pull_record(context, self.scale_up_task_id)  # the scale-up's window ends here
        if record:  # its work is read before the capacity goes: a node that leaves takes its counts with it
            self._window_end = (record, window.end_snapshot(self.hook, self.deployment_id))
        return {**self._update(context), **self._close_window()}

    def _close_window(self) -> dict[str, Any]:
        """Close the scale-up's window, once the scale-down has been sent (the XCom ``capacity_usage``).

        Only then: a try whose scale-down failed still holds the capacity, so it reports nothing, and its retry
        reports the window once, held until its own scale-down.
        """
        if self._window_end is not None:
            record, end = self._window_end
            self._window_end = None
            self._capacity = {window.USAGE_KEY: window.close_window(record, end, task_log=self.log)}
        return self._capacity

    def _update(self, context: Context) -> dict[str, Any]:
        from airflow_esml.core.readiness import WaitWindow

        check_id("deployment_id", self.deployment_id)
        desired = parse_settings(self.number_of_allocations, self.adaptive_allocations)
        max_step, policy = parse_max_step(self.max_step), parse_capacity_policy(self.capacity_policy)
        self.persist_kibana_link(context, self.deployment_id)
        self.scaled_target(self.deployment_id, deploy_within=self.timeout)
        held = self._through_leases(desired, policy) if self.honour_leases else None
        if held is not None:
            return self._wait(held) if self.wait_for_completion else held
        plan, result = self._plan(desired, policy)
        steps = gradual_steps(plan, max_step)
        if len(steps) > 1:
            return self._run_steps(plan.body, steps, {**result, "steps": []}, WaitWindow.starting_now(self.timeout))
        self._apply(plan)
        return self._wait(result) if self.wait_for_completion else result

    def _plan(self, desired: Settings, policy: str) -> tuple[UpdatePlan, dict[str, Any]]:
        """The update to make, checked against the ML nodes for a scale-up, and the XCom result it gives.

        The result has a ``capacity`` entry when the request was cut to what fits, or when the capacity could
        not be checked (``{"checked": False, "reason": ...}``: a monitoring API was refused; the update goes on).
        """
        from airflow_esml.core import capacity
        from airflow_esml.core.plan import plan_update

        serverless = self.hook.is_serverless()
        current = self.hook.get_deployment(self.deployment_id)
        plan = plan_update(current, desired, self.adaptive_policy, serverless=serverless)
        if plan.raised:
            self.log.info("%s: adaptive allocations stay on; raising their minimum (adaptive_policy='raise_min')",
                          self.deployment_id)  # fmt: skip
        target = self.scaled_target(self.deployment_id)
        if not capacity.needs_check(plan, policy):
            return plan, update_result(plan, target)
        if serverless:  # its _nodes, _ml/info and _cluster/settings answer 410; the project autoscales
            report: CapacityReport | CapacityUnchecked = capacity.serverless_unchecked(self.deployment_id)
        else:
            report = self.hook.get_capacity(plan.current, self.autoscaling)
        plan, decision = capacity.apply_capacity(plan, report, policy)
        (self.log.warning if decision.warn else self.log.info)("%s", decision.message)
        result = update_result(plan, target)
        if decision.noteworthy:
            result["capacity"] = decision.to_dict()
        return plan, result

    # -- deployments held by leases -------------------------------------------------------------------

    @cached_property
    def lease_store(self) -> LeaseStore:
        from airflow_esml.leases.store import LeaseStore  # loads the elasticsearch client

        return LeaseStore(self.hook, index=self.leases_index)

    def _through_leases(self, desired: Settings, policy: str) -> dict[str, Any] | None:
        """With a lease document: ``desired`` becomes the baseline, the deployment gets ``max(desired, leases)``.

        None, with nothing done, when no lease document exists (the update is then made directly).
        """
        from airflow_esml.leases.decisions import goal_settings, held_by_leases

        doc = self.lease_store.read(self.deployment_id)
        if doc is None:
            return None
        live = doc.reaped(time.time())[0].leases
        plan, result = self._plan(goal_settings(desired, live), policy)  # a scale-up above the leases is checked
        baseline = plan.new_settings if (result.get("capacity") or {}).get("capped") else desired
        outcome = self.lease_store.set_baseline(self.deployment_id, baseline)
        if outcome is None or outcome.goal is None:
            return None  # the last lease ended meanwhile
        result["leases"] = held_by_leases(len(outcome.leases), baseline, outcome.goal)
        result["number_of_allocations"] = outcome.goal.number_of_allocations
        result["updated"] = outcome.changed
        if result["leases"]["deferred_until_leases_end"]:
            self.log.info(
                "%s: %d live lease(s) hold %s; %s becomes the baseline, set when the last lease ends",
                self.deployment_id,
                len(outcome.leases),
                outcome.goal.describe(),
                baseline.describe(),
            )
        else:
            self.log.info("%s: set to %s (above its %d live lease(s))", self.deployment_id, baseline.describe(),
                          len(outcome.leases))  # fmt: skip
        return result

    # -- gradual scaling (max_step) -------------------------------------------------------------------

    def _run_steps(
        self, first_body: dict[str, Any] | None, steps: list[Step], result: dict[str, Any], window: WaitWindow
    ) -> dict[str, Any]:
        """Issue ``steps`` in order, waiting for each one's allocations (deferring between steps if deferrable)."""
        from airflow_esml.core.steps import stopped_message

        if not steps:  # resumed after the last step
            return result
        goal = steps[-1].end
        for step in steps:
            body = {**(first_body or {}), "number_of_allocations": step.end}  # the first may also switch adaptive off
            self.log.info("%s: %s", self.deployment_id, step.describe())
            try:
                self.hook.update_deployment(self.deployment_id, **body)
            except EsmlError as exc:
                raise type(exc)(
                    stopped_message(
                        self.deployment_id, step, goal=goal, target_now=step.start, started=None, reason=str(exc)
                    )
                ) from exc
            result.update(self._close_window())  # a scale-down's first step ends the window; travels on deferral
            if step.last and not self.wait_for_completion:
                result["steps"].append({**step.to_dict(), "started_allocations": None})
                return result
            resume = {
                "result": result,
                "steps": [s.to_dict() for s in steps if s.index >= step.index],
                "window": [window.started_at, window.end_time],
            }
            verdict = self.wait_or_defer(step.end, window, method_name="resume_steps", kwargs=resume)
            self._finish_step(verdict, step, goal, result)
        return result

    def _finish_step(self, verdict: Verdict, step: Step, goal: int, result: dict[str, Any]) -> None:
        """Record a step whose wait ended; raise, saying where it stopped, if it did not succeed."""
        from airflow_esml.core.steps import stopped_message

        started = verdict.status.started_allocations if verdict.status else None
        if verdict.outcome != "success":
            error = AllocationsTimeoutError if verdict.outcome == "timeout" else DeploymentFailedError
            raise error(
                stopped_message(
                    self.deployment_id, step, goal=goal, target_now=step.end, started=started, reason=verdict.message
                )
            )
        result["steps"].append({**step.to_dict(), "started_allocations": started})
        if step.last:
            final = self._with_metrics({"deployment": verdict.status.to_dict() if verdict.status else None})
            result.update(final)  # the result travels between deferrals, so it is filled in place

    def resume_steps(
        self,
        context: Context,
        event: dict[str, Any] | None = None,
        result: dict[str, Any] | None = None,
        steps: list[dict[str, Any]] | None = None,
        window: list[float] | None = None,
    ) -> dict[str, Any]:
        """Resume a gradual change after a step's trigger event: record that step, then issue the next ones."""
        from airflow_esml.core.readiness import WaitWindow
        from airflow_esml.core.steps import Step

        assert result is not None and steps and window
        plan = [Step.from_dict(s) for s in steps]
        self._finish_step(self.resume_verdict(event), plan[0], plan[-1].end, result)
        return self._run_steps(None, plan[1:], result, WaitWindow(window[0], window[1]))

    def _with_metrics(self, result: dict[str, Any]) -> dict[str, Any]:
        """``result`` with the deployment's performance figures (from the last status seen), also logged."""
        from airflow_esml.core.metrics import metrics_of
        from airflow_esml.core.status import DeploymentStatus

        status = result.get("deployment")
        if result.get("accounting") and status:  # the scale-up's allocations were seen started now
            result["accounting"]["ready_at"] = result["accounting"].get("ready_at") or time.time()
        if not status:
            return result
        metrics = metrics_of(DeploymentStatus.from_dict(status))
        self.log.info("%s: after the change: %s", self.deployment_id, metrics.describe())
        return {**result, "metrics": metrics.to_dict()}

    def _apply(self, plan: UpdatePlan) -> None:
        from airflow_esml.core.settings import Settings

        current = plan.current
        new = plan.new_settings.describe()
        if plan.body is None:
            self.log.info("%s already has the requested setting (%s); nothing to change", current.deployment_id, new)
            return
        self.log.info("%s: changing %s -> %s", current.deployment_id, Settings.of(current).describe(), new)
        self.hook.update_deployment(current.deployment_id, **plan.body)

    def _wait(self, result: dict[str, Any]) -> dict[str, Any]:
        """Wait for the new allocations (or defer); the result then also has the final status and metrics."""
        result = {**result, **self._close_window()}
        needed = result["number_of_allocations"] or result.get("raised_min")
        status = self.wait_for_allocations(needed, kwargs={"result": result})
        return self._with_metrics({**result, "deployment": status})

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, result: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Resume after the trigger's event: the result of :meth:`execute`, with the final status."""
        return self._with_metrics({**(result or {}), "deployment": self.resumed_status(event)})


def gradual_steps(plan: UpdatePlan, max_step: int | None) -> list[Step]:
    """The steps of a count change under ``max_step`` (none when there is no count change or no ``max_step``)."""
    from airflow_esml.core.steps import plan_steps

    if max_step is None or plan.body is None or "number_of_allocations" not in plan.body:
        return []
    return plan_steps(plan.current.target_allocations, plan.body["number_of_allocations"], max_step)


def update_result(plan: UpdatePlan, target: Target | None = None) -> dict[str, Any]:
    """The operator's XCom result: previous and new settings of the deployment, and (given its ``target``) the API
    that scales it: ``managed_by``, ``inference_id``, ``task_type``."""
    from airflow_esml.core import accounting

    current = plan.current
    raised = plan.new_settings.adaptive_allocations if plan.raised else None
    allocations = plan.new_number_of_allocations if raised is None else raised.min_number_of_allocations
    opened = None
    if allocations is not None and allocations > current.target_allocations:
        opened = accounting.open_window(
            current, baseline=current.target_allocations, allocations=allocations, now=time.time()
        ).to_dict()  # the opening of a window of capacity above the baseline, closed by the scale-down
    result = {
        **(target.to_xcom() if target else {}),
        **({"raised_min": raised.min_number_of_allocations} if raised is not None else {}),
        "deployment_id": current.deployment_id,
        "model_id": current.model_id,
        "previous_number_of_allocations": current.target_allocations,
        "previous_adaptive_allocations": (
            current.adaptive_allocations.to_dict() if current.adaptive_allocations else None
        ),
        "number_of_allocations": plan.new_number_of_allocations,
        "adaptive_allocations": plan.new_adaptive_allocations,
        "updated": plan.changes,
    }
    if opened:
        result[window.START_KEY] = opened
    return result
