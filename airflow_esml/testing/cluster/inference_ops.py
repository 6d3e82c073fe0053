"""The cluster's inference entry point: resolve the deployment, queue the documents, wait for them."""

from __future__ import annotations

import time
from typing import Any

from airflow_esml.testing.cluster.core import ClusterCore
from airflow_esml.testing.cluster.inference import QueueFullError, cache_lookup, fake_result
from airflow_esml.testing.cluster.state import Deployment
from airflow_esml.testing.cluster.values import format_time
from airflow_esml.testing.protocol import EsError

QUEUE_FULL = "inference process queue is full. Unable to execute command"
#: ``MAX_PENDING_REQUEST_COUNT`` of ``InferenceWaitForAllocation``
MAX_PENDING = 100


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
            dep = self._await_allocation(model_or_deployment_id, dep, deadline, timeout)
            now = self._advance()
            end = self._schedule(dep, len(docs), now, deadline, timeout)
            hits = cache_lookup(dep.cache, dep.cache_bytes, [str(doc[field]) for doc in docs])
            if hits:
                first = min(n for n, r in dep.routes.items() if r.state == "started")
                dep.engine.record_cache_hits(first, now, hits)
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

    def _await_allocation(self, ident: str, dep: Deployment, deadline: float, timeout: float) -> Deployment:
        """Wait for a routable allocation when the deployment is scaled to zero (``InferenceWaitForAllocation``).

        Adaptive deployments with min 0 or unset make the scaler ask for 1 allocation and wait (from 8.17, when
        PR #116936 removed the feature flag); at most :data:`MAX_PENDING` requests wait. Anything else with no
        routable allocation is a 409.
        """
        if dep.state == "stopping":
            raise EsError(409, "status_exception", f"Trained model [{dep.deployment_id}] is [stopping]")
        if dep.engine.worker_count() > 0:
            return dep
        message = f"Trained model deployment [{ident}] is not allocated to any nodes"
        low = dep.adaptive.min_number_of_allocations if dep.adaptive is not None else None
        from_zero = dep.adaptive_enabled() and not low and self.version.at_least("8.17")
        if not from_zero and (not dep.adaptive_enabled() or not dep.routes):
            raise EsError(409, "status_exception", message)
        if dep.waiting_for_allocation >= MAX_PENDING:
            raise EsError(
                429,
                "status_exception",
                f"Rejected inference request waiting for an allocation of deployment [{dep.deployment_id}]. "
                "Too many pending requests",
            )
        dep.engine.last_request = self._now()  # a waiting request is activity: the scaler must not drop to 0
        if dep.target == 0:
            try:
                self._change_target(dep, 1, self._now())
            except EsError:
                raise EsError(409, "status_exception", message) from None
            if dep.scaler is not None:
                dep.scaler.last_scale_up = self._now()
        dep.waiting_for_allocation += 1
        try:
            while self.deployments.get(dep.deployment_id) is dep and dep.engine.worker_count() == 0:
                if self._now() >= deadline:
                    raise EsError(
                        408,
                        "model_deployment_timeout_exception",
                        f"Timed out after [{format_time(timeout)}] waiting for trained model deployment "
                        f"[{dep.deployment_id}] to start. Use the trained model stats API to track the state of the "
                        "deployment and try again once it has started.",
                    )
                self._wait_changes(deadline)
                self._advance()
        finally:
            dep.waiting_for_allocation -= 1
        if self.deployments.get(dep.deployment_id) is not dep:
            raise EsError(
                409,
                "status_exception",
                f"[{dep.deployment_id}] Error waiting for a model allocation, model assignment has been removed",
            )
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
