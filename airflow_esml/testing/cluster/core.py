"""The cluster model's engine: lazy, time-ordered state transitions under one lock.

Nothing runs in the background. Every public method first calls :meth:`ClusterCore._advance`, which
materialises every transition that became due since the last call (autoscaled nodes joining, routes
finishing their model load, nodes applying a changed allocation count, adaptive-scaler samples,
completed inferences) in time order, and audits each at the instant it happened.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from airflow_esml.testing.cluster.adaptive import ScalerConfig, desired_allocations
from airflow_esml.testing.cluster.endpoints import Endpoint, default_endpoints
from airflow_esml.testing.cluster.placement import Placer, Plan, reduce_targets
from airflow_esml.testing.cluster.state import Deployment, MlNode, Model, Route
from airflow_esml.testing.cluster.values import new_id
from airflow_esml.testing.protocol import AuditLog, EsError, EsVersion

LOAD_SAMPLES = 3
NOT_ENOUGH_FOR_UPDATE = (
    "Could not update deployment because there are not enough resources to provide all requested allocations"
)


class ClusterCore:
    """State and transitions; see :class:`airflow_esml.testing.cluster.Cluster` for the public API."""

    def __init__(
        self,
        *,
        version: EsVersion,
        audit: AuditLog,
        load_seconds: float,
        autoscale: bool,
        autoscale_delay_seconds: float,
        autoscale_node_processors: int,
        infer_seconds_per_doc: float,
        rng: random.Random | None,
        clock: Callable[[], float],
    ) -> None:
        self.version = version
        self.audit = audit
        self.load_seconds = load_seconds
        self.model_load_seconds: dict[str, float] = {}
        self.autoscale = autoscale
        self.autoscale_delay_seconds = autoscale_delay_seconds
        self.autoscale_node_processors = autoscale_node_processors
        self.autoscale_node_memory_bytes = 16 * 2**30
        self.infer_seconds_per_doc = infer_seconds_per_doc
        self.apply_seconds = 0.1
        self.rng = rng or random.Random()
        self.clock = clock
        self.scaler = ScalerConfig(scale_to_zero_after=(24 * 3600.0 if version.at_least("8.19") else 900.0))
        if version.major == 9 and version.minor == 0:
            self.scaler.scale_to_zero_after = 900.0
        self.lock = threading.RLock()
        self._changed = threading.Condition(self.lock)
        self._wall_offset = time.time() - clock()
        self.nodes: dict[str, MlNode] = {}
        self.models: dict[str, Model] = {}
        self.deployments: dict[str, Deployment] = {}
        self.inference_endpoints: dict[str, Endpoint] = {e.inference_id: e for e in default_endpoints(version)}
        self._joins: list[tuple[float, int]] = []
        self._auto_seq = 0
        self.cluster_name = "esml-simulator"
        self.closed = False
        self.data_node_id = new_id(self.rng)

    # -- time and audit ------------------------------------------------------------------------

    def wall(self, instant: float) -> float:
        """The ``time.time()`` value of a clock instant."""
        return instant + self._wall_offset

    def _record(self, kind: str, at: float, **data: Any) -> None:
        self.audit.record(kind, at=self.wall(at), **data)

    def _now(self) -> float:
        return self.clock()

    # -- the event loop ------------------------------------------------------------------------

    def _advance(self) -> float:
        """Apply every transition due by now, in time order; return now."""
        now = self._now()
        while (event := self._next_event(now)) is not None:
            at, action = event
            self._complete(at)
            action(at)
        self._complete(now)
        return now

    def _complete(self, until: float) -> None:
        for dep in self.deployments.values():
            dep.engine.complete_until(until)

    def _next_event(self, now: float) -> tuple[float, Callable[[float], None]] | None:
        best: tuple[float, int, Callable[[float], None]] | None = None

        def offer(at: float | None, order: int, action: Callable[[float], None]) -> None:
            nonlocal best
            if at is not None and at <= now and (best is None or (at, order) < best[:2]):
                best = (at, order, action)

        for at, processors in self._joins:
            offer(at, 0, partial(self._join, processors=processors))
        for dep in self.deployments.values():
            for route in dep.routes.values():
                if route.state == "starting":
                    offer(route.ready_at, 1, partial(self._route_ready, dep, route))
                elif route.state == "started":
                    offer(route.apply_at, 2, partial(self._route_apply, dep, route))
            if dep.scaler is not None and dep.adaptive_enabled() and dep.state != "stopping":
                offer(dep.scaler.next_eval, 3, partial(self._scaler_tick, dep))
        return None if best is None else (best[0], best[2])

    def _next_due(self) -> float | None:
        """The next instant at which something is scheduled to change (for waiting)."""
        instants: list[float] = [at for at, _ in self._joins]
        for dep in self.deployments.values():
            instants += [r.ready_at for r in dep.routes.values() if r.state == "starting" and r.ready_at is not None]
            instants += [r.apply_at for r in dep.routes.values() if r.state == "started" and r.apply_at is not None]
            if dep.scaler is not None and dep.adaptive_enabled():
                instants.append(dep.scaler.next_eval)
        return min(instants, default=None)

    def close(self) -> None:
        """Wake every thread waiting inside the model; their requests fail with 503 from now on."""
        with self.lock:
            self.closed = True
            self._changed.notify_all()

    def _check_open(self) -> None:
        if self.closed:
            raise EsError(503, "node_closed_exception", "node closed")

    def _wait_changes(self, deadline: float) -> None:
        """Sleep (lock released) until the next scheduled change, a notification or ``deadline``."""
        self._check_open()
        now = self._now()
        wake = min(x for x in (deadline, self._next_due()) if x is not None)
        self._changed.wait(timeout=min(max(wake - now, 0.0), 0.05) + 0.001)

    # -- transitions ---------------------------------------------------------------------------

    def _load_seconds(self, dep: Deployment) -> float:
        return self.model_load_seconds.get(dep.model_id, self.load_seconds)

    def _add_node(self, name: str, processors: int, memory_bytes: int, at: float) -> MlNode:
        node = MlNode(name, new_id(self.rng), new_id(self.rng), processors, memory_bytes, 9300 + len(self.nodes) + 1)
        self.nodes[node.node_id] = node
        self._record(
            "node_added", at, node=name, node_id=node.node_id, processors=processors, memory_bytes=memory_bytes
        )
        return node

    def _join(self, at: float, processors: int) -> None:
        self._joins.remove(next(j for j in self._joins if j == (at, processors)))
        self._auto_seq += 1
        self._add_node(f"ml-autoscaled-{self._auto_seq}", processors, self.autoscale_node_memory_bytes, at)
        self._rebalance(at)

    def _set_route_state(self, dep: Deployment, route: Route, state: str, at: float, reason: str = "") -> None:
        route.state, route.reason = state, reason
        node = self.nodes.get(route.node_id)
        self._record(
            "route_state",
            at,
            deployment_id=dep.deployment_id,
            node=node.name if node else route.node_id,
            node_id=route.node_id,
            state=state,
            reason=reason,
        )

    def _route_ready(self, dep: Deployment, route: Route, at: float) -> None:
        route.ready_at, route.started_at = None, at
        self._set_route_state(dep, route, "started", at)
        self._after_routing(dep, at)

    def _route_apply(self, dep: Deployment, route: Route, at: float) -> None:
        route.current, route.apply_at = route.target, None
        self._record(
            "route_allocations", at, deployment_id=dep.deployment_id, node_id=route.node_id, current=route.current
        )
        self._after_routing(dep, at)

    def _after_routing(self, dep: Deployment, at: float) -> None:
        if dep.state != "stopping":
            dep.state = dep.stored_state()
        dep.max_assigned = max(dep.max_assigned, sum(r.current for r in dep.routes.values()))
        slots = {n: r.current * dep.threads for n, r in dep.routes.items() if r.state == "started"}
        dep.engine.set_workers(at, slots)
        self._changed.notify_all()

    def _placer(self, extra: Deployment | None = None) -> Placer:
        deps = [*self.deployments.values(), *([extra] if extra else [])]
        memory = {
            d.deployment_id: self.models[d.model_id].required_memory_bytes for d in deps if d.model_id in self.models
        }
        return Placer(self.nodes, deps, memory)

    def _apply_plan(self, dep: Deployment, plan: Plan, at: float) -> None:
        for node_id, count in sorted(plan.added.items()):
            route = dep.routes.get(node_id)
            if route is None:
                route = Route(node_id, count, count, ready_at=at + self._load_seconds(dep))
                dep.routes[node_id] = route
                self._set_route_state(dep, route, "starting", at)
            elif route.state == "started":
                route.target += count
                route.apply_at = at + min(self.apply_seconds, self._load_seconds(dep))
            else:
                route.target += count
                route.current = route.target
        self._after_routing(dep, at)

    def _set_target(self, dep: Deployment, new: int, at: float) -> None:
        old, dep.target = dep.target, new
        self._record("target_changed", at, deployment_id=dep.deployment_id, model_id=dep.model_id, old=old, new=new)

    def _change_target(self, dep: Deployment, new: int, at: float) -> None:
        """Raise or lower the target; on fixed clusters an increase that does not fit raises 429."""
        old = dep.target
        if new > old:
            needed = new - dep.placed()
            plan = self._placer().plan(dep, needed)
            if not self.autoscale and plan.total < needed:
                raise EsError(429, "status_exception", NOT_ENOUGH_FOR_UPDATE)
            self._set_target(dep, new, at)
            self._apply_plan(dep, plan, at)
            dep.reason = plan.reason
            self._request_nodes(at)
        elif new < old:
            self._set_target(dep, new, at)
            dep.reason = None
            self._trim(dep, new, at)

    def _trim(self, dep: Deployment, new: int, at: float) -> None:
        if dep.placed() <= new:
            return
        kept = reduce_targets({n: r.target for n, r in dep.routes.items()}, new)
        for node_id in sorted(dep.routes):
            route = dep.routes[node_id]
            if node_id not in kept:
                del dep.routes[node_id]
                dep.engine.drop_node(node_id)
                self._set_route_state(dep, route, "stopped", at)
            elif kept[node_id] != route.target:
                route.target = kept[node_id]
                if route.state == "started":
                    route.apply_at = at + min(self.apply_seconds, self._load_seconds(dep))
                else:
                    route.current = route.target
        self._after_routing(dep, at)

    def _rebalance(self, at: float) -> None:
        """Place missing allocations of every deployment (after a node joined)."""
        for dep in sorted(self.deployments.values(), key=lambda d: d.created_at):
            needed = dep.target - dep.placed()
            if dep.state == "stopping" or needed <= 0:
                continue
            plan = self._placer().plan(dep, needed)
            self._apply_plan(dep, plan, at)
            dep.reason = plan.reason
        self._request_nodes(at)

    def _request_nodes(self, at: float) -> None:
        """Autoscaling: ask for enough new ML nodes to hold every missing normal-priority allocation."""
        if not self.autoscale:
            return
        short = [d for d in self.deployments.values() if d.priority == "normal" and d.state != "stopping"]
        missing = sum(max(0, d.target - d.placed()) * d.threads for d in short)
        pending = sum(p for _, p in self._joins)
        if missing <= pending:
            return
        size = max([self.autoscale_node_processors, *(d.threads for d in short if d.target > d.placed())])
        for _ in range(math.ceil((missing - pending) / size)):
            self._joins.append((at + self.autoscale_delay_seconds, size))
        self._record(
            "autoscale_requested", at, processors=missing - pending, nodes=math.ceil((missing - pending) / size)
        )

    def _scaler_tick(self, dep: Deployment, at: float) -> None:
        assert dep.scaler is not None and dep.adaptive is not None
        interval = self.scaler.interval
        dep.scaler.next_eval = at + interval
        window = interval * LOAD_SAMPLES  # smoothed, like the Kalman filter of Elasticsearch
        load = dep.engine.demand_seconds(at - window, at) / window / dep.threads
        last = dep.engine.last_request if dep.engine.last_request is not None else dep.scaler.started_at
        wanted = desired_allocations(
            dep.adaptive, dep.target, load, at - last, at - dep.scaler.last_scale_up, self.scaler
        )
        old = dep.target
        if wanted == old or (dep.state != "started" and old > 0):
            return
        try:
            self._change_target(dep, wanted, at)
        except EsError:
            return
        if wanted > old:
            dep.scaler.last_scale_up = at
