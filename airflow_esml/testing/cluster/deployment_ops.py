"""Deployments as the ML API changes them: start (with ``wait_for``), update, stop, and clearing the cache.

Each follows Elasticsearch's processing order and messages (see ``docs/simulator-cluster.md``).
"""

from __future__ import annotations

from typing import Any

from airflow_esml.testing.cluster.adaptive import AdaptiveSettings, ScalerState, merge
from airflow_esml.testing.cluster.endpoints import (
    created_by,
    ml_update_refused,
    ownership_409s,
    stop_refusals,
    stop_refused,
    used_by,
)
from airflow_esml.testing.cluster.errors import not_found_deployment, not_found_model, start_capacity_error
from airflow_esml.testing.cluster.inference import InferenceEngine
from airflow_esml.testing.cluster.observation import ObservationOps
from airflow_esml.testing.cluster.params import (
    DEFAULT_QUEUE_CAPACITY,
    StartParams,
    UpdateParams,
    validation_error,
)
from airflow_esml.testing.cluster.state import WAIT_FOR_ORDER, Deployment, Model
from airflow_esml.testing.cluster.values import format_time, parse_bytes
from airflow_esml.testing.protocol import EsError

MAX_DEPLOYMENTS = 100
_UNSET: Any = object()


class DeploymentOps(ObservationOps):
    """Start, update and stop deployments, and clear their inference cache, as the ML API does."""

    def start_deployment(
        self,
        model_id: str,
        *,
        deployment_id: str | None = None,
        number_of_allocations: int = 1,
        threads_per_allocation: int = 1,
        priority: str = "normal",
        queue_capacity: int | None = None,
        adaptive_allocations: dict[str, Any] | None = None,
        wait: bool = False,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Start a deployment as the API does; with ``wait`` block until no route is starting."""
        adaptive = AdaptiveSettings(**adaptive_allocations) if adaptive_allocations is not None else None
        params = StartParams(
            model_id=model_id,
            deployment_id=deployment_id,
            number_of_allocations=None if adaptive is not None and adaptive.enabled else number_of_allocations,
            threads_per_allocation=threads_per_allocation,
            queue_capacity=queue_capacity if queue_capacity is not None else DEFAULT_QUEUE_CAPACITY,
            priority=priority,
            timeout=timeout,
            adaptive=adaptive,
        )
        params.validate()
        dep_id = self.start(params)
        return self.wait_started(dep_id, "fully_allocated" if wait else "starting", timeout)

    def start(self, params: StartParams) -> str:
        """Create the deployment (validated ``params``); return its id. Raises :class:`EsError`."""
        dep_id = params.deployment_id or params.model_id
        with self.lock:
            now = self._advance()
            if dep_id in self.deployments:
                raise EsError(
                    400,
                    "status_exception",
                    "Could not start model deployment because an existing deployment with the same id "
                    f"[{dep_id}] exist",
                )
            model = self.models.get(params.model_id)
            if model is None:
                raise not_found_model(params.model_id)
            self._check_deployable(model, dep_id)
            dep = self._new_deployment(model, dep_id, params, now)
            plan = self._placer(dep).plan(dep, dep.target)
            if not self.autoscale and plan.total < dep.target:
                raise start_capacity_error(plan.total, plan.reason)
            self.deployments[dep_id] = dep
            self._record("deployment_started", now, deployment_id=dep_id, model_id=model.model_id)
            self._record("target_changed", now, deployment_id=dep_id, model_id=dep.model_id, old=0, new=dep.target)
            if dep.adaptive is not None:
                self._record("adaptive_changed", now, deployment_id=dep_id, old=None, new=dep.adaptive.to_dict())
            self._apply_plan(dep, plan, now)
            dep.reason = plan.reason
            self._request_nodes(now)
            return dep_id

    def _check_deployable(self, model: Model, dep_id: str) -> None:
        if model.model_type != "pytorch":
            raise EsError(
                400,
                "status_exception",
                f"model [{model.model_id}] of type [{model.model_type}] cannot be deployed. "
                "Only PyTorch models can be deployed",
            )
        if dep_id != model.model_id and dep_id in self.models:
            raise EsError(
                400,
                "status_exception",
                f"Deployment id [{dep_id}] is the same as an another model which is not the model being deployed. "
                "Deployment id can be the same as the model being deployed but cannot match a different model",
            )
        if len(self.deployments) >= MAX_DEPLOYMENTS:
            raise EsError(
                429,
                "status_exception",
                "Could not start model deployment because existing deployments reached the limit of "
                f"[{MAX_DEPLOYMENTS}]",
            )

    def _new_deployment(self, model: Model, dep_id: str, params: StartParams, now: float) -> Deployment:
        adaptive = params.adaptive
        if params.number_of_allocations is not None:
            target = params.number_of_allocations
        else:
            target = adaptive.initial_allocations() if adaptive is not None and adaptive.enabled else 1
        cache = params.cache_size if params.cache_size is not None else f"{model.model_bytes}b"
        dep = Deployment(
            deployment_id=dep_id,
            model_id=model.model_id,
            threads=params.threads_per_allocation,
            target=target,
            queue_capacity=params.queue_capacity,
            cache_size=cache,
            cache_bytes=parse_bytes(cache, "cache_size"),
            priority=params.priority,
            model_bytes=model.model_bytes,
            created_at=now,
            start_wall=self.wall(now),
            engine=InferenceEngine(),
            adaptive=adaptive,
            zero_target_state="fully_allocated" if self.version.at_least("8.17") else "starting",
        )
        dep.scaler = ScalerState(next_eval=now + self.scaler.interval, started_at=now)
        return dep

    def wait_started(self, deployment_id: str, wait_for: str, timeout: float) -> dict[str, Any]:
        """Start's ``wait_for``: return the assignment, or raise 400 / 500 / 408.

        As ``DeploymentStartedPredicate`` in elastic/elasticsearch
        x-pack/plugin/ml/src/main/java/org/elasticsearch/xpack/ml/action/TransportStartTrainedModelDeploymentAction.java
        """
        with self.lock:
            deadline = self._now() + timeout
            while True:
                now = self._advance()
                dep = self.deployments.get(deployment_id)
                if dep is None:
                    raise EsError(
                        400,
                        "status_exception",
                        "Error waiting for the model deployment to start. "
                        "The trained model assignment was removed while waiting",
                    )
                failed = {n: r.reason for n, r in sorted(dep.routes.items()) if r.state == "failed"}
                if failed:
                    self._remove(dep, now, "a route failed while starting")
                    errors = ", ".join(f"{n}={reason}" for n, reason in failed.items())
                    raise EsError(
                        500,
                        "status_exception",
                        "Could not start trained model deployment, the following nodes failed with errors "
                        f"[{{{errors}}}]",
                    )
                reached = WAIT_FOR_ORDER[dep.allocation_state()] >= WAIT_FOR_ORDER[wait_for]
                if reached or not any(r.state == "starting" for r in dep.routes.values()):
                    return self.renderer(now).assignment(dep)
                if now >= deadline:
                    raise EsError(
                        408,
                        "status_exception",
                        f"Timed out after [{format_time(timeout)}] waiting for trained model deployment "
                        f"[{deployment_id}] to start. Use the trained model stats API to track the state of the "
                        "deployment and try again once it has started.",
                    )
                self._wait_changes(deadline)

    def update_deployment(
        self,
        deployment_id: str,
        *,
        number_of_allocations: int | None = None,
        adaptive_allocations: dict[str, Any] | object | None = _UNSET,
    ) -> dict[str, Any]:
        """Update as the ML API does; return the assignment (new target already set)."""
        params = UpdateParams(number_of_allocations=number_of_allocations)
        if adaptive_allocations is not _UNSET:
            params.adaptive_set = True
            params.adaptive_fields = dict(adaptive_allocations) if isinstance(adaptive_allocations, dict) else None
        return self.update(deployment_id, params)

    def update(self, deployment_id: str, params: UpdateParams, *, internal: bool = False) -> dict[str, Any]:
        """Apply a parsed update request in Elasticsearch's processing order.

        As ``updateDeployment`` in elastic/elasticsearch
        x-pack/plugin/ml/src/main/java/org/elasticsearch/xpack/ml/inference/assignment/TrainedModelAssignmentClusterService.java

        :param internal: sent by the inference API (``Source.INFERENCE_API``): skips the ownership check.
        """
        params.validate()
        with self.lock:
            now = self._advance()
            if not internal and ownership_409s(self.version):
                owner = created_by(self.inference_endpoints.values(), deployment_id)
                if owner is not None:
                    raise ml_update_refused(owner, deployment_id)
            dep = self._deployment(deployment_id)
            adaptive = dep.adaptive
            if params.adaptive_set:
                adaptive = merge(dep.adaptive, params.adaptive_fields) if params.adaptive_fields is not None else None
            enabled = adaptive is not None and bool(adaptive.enabled)
            if enabled and params.number_of_allocations is not None:
                msg = "[number_of_allocations] cannot be set if adaptive allocations is enabled"
                raise validation_error([msg], type_="validation_exception")
            new = params.number_of_allocations if params.number_of_allocations is not None else dep.target
            if adaptive is not None and enabled:
                new = adaptive.clamp(new)
            if new == dep.target and adaptive == dep.adaptive:
                return self.renderer(now).assignment(dep)
            if dep.state != "started":
                raise EsError(409, "status_exception", "cannot update deployment that is not in [started] state")
            if dep.priority == "low" and new > 1 and self.version.at_least("9.3"):
                raise validation_error(["[number_of_allocations] must be 1 when [priority] is low"])
            self._change_target(dep, new, now)
            if adaptive != dep.adaptive:
                old = dep.adaptive.to_dict() if dep.adaptive is not None else None
                dep.adaptive = adaptive
                if dep.scaler is not None:
                    dep.scaler.next_eval = now + self.scaler.interval
                new_dict = adaptive.to_dict() if adaptive is not None else None
                self._record("adaptive_changed", now, deployment_id=deployment_id, old=old, new=new_dict)
                self._changed.notify_all()
            return self.renderer(now).assignment(dep)

    def stop_deployment(self, deployment_id: str, *, force: bool = False) -> None:
        """Stop a deployment (no error when it does not exist, as with ``allow_no_match=true``)."""
        self.stop(deployment_id, force=force, allow_no_match=True)

    def stop(self, deployment_id: str, *, force: bool, allow_no_match: bool, internal: bool = False) -> dict[str, Any]:
        """Stop: mark ``stopping``, drain queued inference unless ``force``, then remove.

        :param internal: sent by the inference API when it deletes an endpoint: never refused.
        """
        with self.lock:
            now = self._advance()
            dep = self.deployments.get(deployment_id)
            if dep is None:
                if allow_no_match:
                    return {"stopped": True}
                raise not_found_deployment(deployment_id)
            if not internal and not force and stop_refusals(self.version):
                self._check_stop_allowed(deployment_id)
            if dep.state != "stopping":
                dep.state = "stopping"
                for route in dep.routes.values():
                    self._set_route_state(dep, route, "stopping", now)
                self._changed.notify_all()
            drain = None if force else dep.engine.busy_until()
            while drain is not None and now < drain and self.deployments.get(deployment_id) is dep:
                self._check_open()
                self._changed.wait(timeout=min(drain - now, 0.05))
                now = self._advance()
            if self.deployments.get(deployment_id) is dep:
                self._remove(dep, now, "stopped")
            return {"stopped": True}

    def _check_stop_allowed(self, deployment_id: str) -> None:
        endpoints = self.inference_endpoints.values()
        owner = created_by(endpoints, deployment_id)
        if owner is not None:
            raise stop_refused(deployment_id, owner, created=True)
        users = used_by(endpoints, deployment_id)
        if users:
            raise stop_refused(deployment_id, users[0], created=False)

    def _remove(self, dep: Deployment, now: float, why: str) -> None:
        for route in list(dep.routes.values()):
            self._set_route_state(dep, route, "stopped", now)
        dep.routes.clear()
        del self.deployments[dep.deployment_id]
        self._set_target(dep, 0, now)
        self._record("deployment_stopped", now, deployment_id=dep.deployment_id, model_id=dep.model_id, reason=why)
        self._changed.notify_all()

    def clear_cache(self, deployment_id: str) -> None:
        """Empty the deployment's inference cache (``deployment/cache/_clear``); 404 when unknown."""
        with self.lock:
            self._advance()
            dep = self._deployment(deployment_id)
            dep.cache.clear()
