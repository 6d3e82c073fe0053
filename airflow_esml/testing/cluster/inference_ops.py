"""The cluster's inference entry point: resolve the deployment, queue the documents, wait for them."""

from __future__ import annotations

import time
from typing import Any

from airflow_esml.testing.cluster.core import ClusterCore
from airflow_esml.testing.cluster.inference import QueueFullError, fake_result
from airflow_esml.testing.cluster.state import Deployment
from airflow_esml.testing.cluster.values import format_time
from airflow_esml.testing.protocol import EsError

QUEUE_FULL = "inference process queue is full. Unable to execute command"


class InferenceOps(ClusterCore):
    """``infer``: documents are served by the started allocations x threads (see ``inference``)."""

    def infer(
        self, model_or_deployment_id: str, docs: list[dict[str, Any]], timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Run inference; block (lock released) until the documents are done.

        :param model_or_deployment_id: a deployment id, or a model id with a deployment.
        :param docs: the documents, each with the model's input field.
        :param timeout: seconds before a 408.
        :raises EsError: 404 unknown model, 409 not deployed / not allocated, 429 queue full, 408 timeout.
        """
        with self.lock:
            now = self._advance()
            dep = self._resolve(model_or_deployment_id)
            field = self.models[dep.model_id].input_field
            for doc in docs:
                if not isinstance(doc, dict) or field not in doc:
                    raise EsError(
                        400, "status_exception", f"Input field [{field}] does not exist in the source document"
                    )
            deadline = now + timeout
            dep = self._await_allocation(model_or_deployment_id, dep, deadline)
            now = self._advance()
            end = self._schedule(dep, len(docs), now, deadline, timeout)
        while (left := end - self._now()) > 0 and not self.closed:
            time.sleep(min(left, 0.05))
        self._check_open()
        return [fake_result(doc[field]) for doc in docs]

    def _resolve(self, ident: str) -> Deployment:
        dep = self.deployments.get(ident)
        if dep is not None:
            return dep
        if ident not in self.models:
            raise EsError(404, "resource_not_found_exception", f"Could not find trained model [{ident}]")
        mine = sorted(
            (d for d in self.deployments.values() if d.model_id == ident),
            key=lambda d: (d.state != "started", d.deployment_id),
        )
        if not mine:
            raise EsError(
                409,
                "status_exception",
                f"Model [{ident}] must be deployed to use. Please deploy with the start trained model deployment API.",
            )
        return mine[0]

    def _await_allocation(self, ident: str, dep: Deployment, deadline: float) -> Deployment:
        if dep.state == "stopping":
            raise EsError(409, "status_exception", f"Trained model [{dep.deployment_id}] is [stopping]")
        if dep.engine.worker_count() > 0:
            return dep
        message = f"Trained model deployment [{ident}] is not allocated to any nodes"
        if not dep.adaptive_enabled():
            raise EsError(409, "status_exception", message)
        if dep.target == 0:
            try:
                self._change_target(dep, 1, self._now())
            except EsError:
                raise EsError(409, "status_exception", message) from None
            if dep.scaler is not None:
                dep.scaler.last_scale_up = self._now()
        while self.deployments.get(dep.deployment_id) is dep and dep.engine.worker_count() == 0:
            if self._now() >= deadline:
                raise EsError(408, "status_exception", "Timeout waiting for the model deployment to start")
            self._wait_changes(deadline)
            self._advance()
        if self.deployments.get(dep.deployment_id) is not dep:
            raise EsError(409, "status_exception", message)
        return dep

    def _schedule(self, dep: Deployment, count: int, now: float, deadline: float, timeout: float) -> float:
        try:
            end = dep.engine.schedule(now, count, self.infer_seconds_per_doc, dep.queue_capacity)
        except QueueFullError as full:
            dep.engine.nodes[full.node_id].rejected += 1
            self._record("inference", now, deployment_id=dep.deployment_id, docs=count, status=429)
            raise EsError(429, "status_exception", QUEUE_FULL) from None
        if end > deadline:
            first = min(n for n, r in dep.routes.items() if r.state == "started")
            dep.engine.nodes[first].timeouts += 1
            self._record("inference", now, deployment_id=dep.deployment_id, docs=count, status=408)
            self._sleep_until(deadline)
            raise EsError(408, "status_exception", f"timeout [{format_time(timeout)}] waiting for inference result")
        self._record("inference", now, deployment_id=dep.deployment_id, docs=count, status=200)
        return end

    def _sleep_until(self, instant: float) -> None:
        """Wait with the lock released (the caller holds it)."""
        while self._now() < instant:
            self._check_open()
            self._changed.wait(timeout=min(instant - self._now(), 0.05))
