"""UpdateDeploymentOperator: set a deployment's allocations, optionally waiting until they are started."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, conf

from airflow_esml.exceptions import AllocationsTimeoutError
from airflow_esml.hooks import DEFAULT_CONN_ID
from airflow_esml.plan import DesiredSettings, UpdatePlan, plan_update
from airflow_esml.readiness import WaitWindow, verdict_from_event
from airflow_esml.waiting import check_now, make_trigger, outcome, wait_in_worker

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_esml.hooks.ml import ElasticsearchMLHook


class UpdateDeploymentOperator(BaseOperator):
    """Set a trained-model deployment's ``number_of_allocations`` or its adaptive-allocations settings.

    The deployment is read first: if it already has the requested setting, nothing is sent and the task
    succeeds (it never skips, so a teardown tied to it still runs). Inputs are validated after templating
    and before any call that changes the cluster. The XCom result holds the previous settings
    (``previous_number_of_allocations``, ``previous_adaptive_allocations``) and the new ones, so a later
    task can restore exactly what was there.

    :param deployment_id: the deployment to change (the model id when it was started without one). (templated)
    :param number_of_allocations: the new total number of allocations. (templated)
    :param adaptive_allocations: new adaptive-allocations settings, e.g.
        ``{"enabled": True, "min_number_of_allocations": 1, "max_number_of_allocations": 8}``. Give exactly one
        of this and ``number_of_allocations``. (templated)
    :param elasticsearch_conn_id: the Airflow connection to the cluster. (templated)
    :param adaptive_policy: what to do when ``number_of_allocations`` is given but the deployment has adaptive
        allocations enabled: ``"fail"`` (default) refuses before changing anything; ``"disable"`` switches
        adaptive allocations off and sets the count in the same call.
    :param wait_for_completion: wait until the new allocations are started.
    :param deferrable: wait in the triggerer instead of a worker slot; defaults to
        ``[operators] default_deferrable``.
    :param poll_interval: seconds between two looks at the deployment while waiting.
    :param timeout: seconds to wait for the allocations before failing.
    """

    template_fields: Sequence[str] = (
        "deployment_id",
        "number_of_allocations",
        "adaptive_allocations",
        "elasticsearch_conn_id",
    )
    template_fields_renderers = {"adaptive_allocations": "json"}
    ui_color = "#b8e3f5"

    def __init__(
        self,
        *,
        deployment_id: str,
        number_of_allocations: int | str | None = None,
        adaptive_allocations: dict[str, Any] | str | None = None,
        elasticsearch_conn_id: str = DEFAULT_CONN_ID,
        adaptive_policy: str = "fail",
        wait_for_completion: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 5.0,
        timeout: float = 1800.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deployment_id = deployment_id
        self.number_of_allocations = number_of_allocations
        self.adaptive_allocations = adaptive_allocations
        self.elasticsearch_conn_id = elasticsearch_conn_id
        self.adaptive_policy = adaptive_policy
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.timeout = timeout
        if deferrable and not wait_for_completion:
            self.log.warning(
                "%s: deferrable=True has no effect without wait_for_completion=True", self.task_id
            )

    @cached_property
    def hook(self) -> ElasticsearchMLHook:
        from airflow_esml.hooks.ml import ElasticsearchMLHook

        return ElasticsearchMLHook(self.elasticsearch_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        desired = DesiredSettings.parse(self.number_of_allocations, self.adaptive_allocations)
        plan = plan_update(self.hook.get_deployment(self.deployment_id), desired, self.adaptive_policy)
        self._apply(plan)
        result = update_result(plan)
        if self.wait_for_completion:
            result["deployment"] = self._wait(result)
        return result

    def _apply(self, plan: UpdatePlan) -> None:
        current = plan.current
        if plan.body is None:
            self.log.info(
                "%s already has the requested setting (%s); nothing to change",
                current.deployment_id,
                _describe(plan.new_number_of_allocations, plan.new_adaptive_allocations),
            )
            return
        self.log.info(
            "%s: changing %s -> %s",
            current.deployment_id,
            _describe(current.target_allocations, current.adaptive_allocations),
            _describe(plan.new_number_of_allocations, plan.new_adaptive_allocations),
        )
        self.hook.update_deployment(current.deployment_id, **plan.body)

    def _wait(self, result: dict[str, Any]) -> dict[str, Any] | None:
        window = WaitWindow.starting_now(self.timeout)
        needed = result["number_of_allocations"]
        verdict = check_now(self.hook, self.deployment_id, needed, window)
        if not verdict.done and self.deferrable:
            self.log.info("%s; deferring", verdict.message)
            self.defer(
                trigger=make_trigger(
                    deployment_id=self.deployment_id,
                    elasticsearch_conn_id=self.elasticsearch_conn_id,
                    min_allocations=needed,
                    window=window,
                    poll_interval=self.poll_interval,
                ),
                method_name="execute_complete",
                kwargs={"result": result},
                timeout=timedelta(seconds=self.timeout + 60),
            )
        if not verdict.done:
            verdict = wait_in_worker(
                self.hook, self.deployment_id, needed, window, self.poll_interval, self.log
            )
        self.log.info("%s", verdict.message)
        return outcome(verdict, AllocationsTimeoutError)

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, result: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Resume after the trigger's event: the result of :meth:`execute`, with the final status."""
        verdict = verdict_from_event(event)
        self.log.info("%s", verdict.message)
        return {**(result or {}), "deployment": outcome(verdict, AllocationsTimeoutError)}


def update_result(plan: UpdatePlan) -> dict[str, Any]:
    """The operator's XCom result: previous and new settings of the deployment."""
    current = plan.current
    return {
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


def _describe(number: int | None, adaptive: Any) -> str:
    if adaptive is not None and (adaptive.get("enabled") if isinstance(adaptive, dict) else adaptive.enabled):
        return f"adaptive allocations {adaptive}"
    return f"{number} allocations"
