"""The public API of the simulated cluster: ML nodes, models, deployments and inference.

:class:`Cluster` composes the roles (deployments in ``deployment_ops``, reads in ``observation``, inference in
``inference_ops``, all on the engine of ``core``) and adds the setup: ML nodes, models, node failures and
timings. Thread-safe: every method takes :attr:`Cluster.lock`; waiting and inference service time are spent
with the lock released. Time is real time (``clock``); state advances lazily (see
:mod:`airflow_esml.testing.cluster.core`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from airflow_esml.testing.cluster.deployment_ops import _UNSET as _UNSET  # the old import path
from airflow_esml.testing.cluster.deployment_ops import MAX_DEPLOYMENTS, DeploymentOps
from airflow_esml.testing.cluster.inference_ops import InferenceOps
from airflow_esml.testing.cluster.state import Model
from airflow_esml.testing.protocol import AuditLog, EsVersion

__all__ = ["MAX_DEPLOYMENTS", "Cluster"]


class Cluster(DeploymentOps, InferenceOps):
    """A simulated cluster; see ``docs/simulator-cluster.md`` for every modelled behaviour.

    :param version: the simulated Elasticsearch version.
    :param audit: where state changes are recorded.
    :param load_seconds: model load time of a new route (``starting`` -> ``started``).
    :param autoscale: behave like a cluster with ML autoscaling (200 + new nodes instead of 429).
    :param autoscale_delay_seconds: time until a requested ML node joins.
    :param autoscale_node_processors: allocated processors of an autoscaled node.
    :param infer_seconds_per_doc: service time of one document on one worker.
    :param rng: source of ids.
    :param clock: the time source (seconds).
    """

    def __init__(
        self,
        *,
        version: EsVersion,
        audit: AuditLog,
        load_seconds: float = 0.5,
        autoscale: bool = False,
        autoscale_delay_seconds: float = 2.0,
        autoscale_node_processors: int = 4,
        infer_seconds_per_doc: float = 0.005,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            version=version,
            audit=audit,
            load_seconds=load_seconds,
            autoscale=autoscale,
            autoscale_delay_seconds=autoscale_delay_seconds,
            autoscale_node_processors=autoscale_node_processors,
            infer_seconds_per_doc=infer_seconds_per_doc,
            rng=rng,
            clock=clock,
        )
        self.models["lang_ident_model_1"] = Model("lang_ident_model_1", 1053992, "lang_ident", "text", 1575548914.594)

    # -- setup ---------------------------------------------------------------------------------

    def add_ml_node(self, name: str, processors: int, *, memory_bytes: int = 16 * 2**30) -> str:
        """Add an ML node (a rebalance then places missing allocations); return its node id."""
        with self.lock:
            now = self._advance()
            node = self._add_node(name, processors, memory_bytes, now)
            self._rebalance(now)
            return node.node_id

    def add_model(
        self,
        model_id: str,
        *,
        model_bytes: int = 100 * 2**20,
        model_type: str = "pytorch",
        input_field: str = "text_field",
    ) -> None:
        """Add a trained model (PyTorch unless told otherwise)."""
        with self.lock:
            self.models[model_id] = Model(model_id, model_bytes, model_type, input_field, time.time())

    def fail_node(self, name: str, reason: str = "simulated failure") -> None:
        """Fail every route on the node ``name``; the node takes no new allocations afterwards."""
        with self.lock:
            now = self._advance()
            node = next((n for n in self.nodes.values() if n.name == name), None)
            if node is None:
                raise KeyError(name)
            node.failed_reason = reason
            self._record("node_failed", now, node=name, node_id=node.node_id, reason=reason)
            for dep in self.deployments.values():
                route = dep.routes.get(node.node_id)
                if route is not None and route.state != "failed":
                    route.ready_at = route.apply_at = None
                    self._set_route_state(dep, route, "failed", now, reason)
                    self._after_routing(dep, now)

    def set_load_seconds(self, seconds: float, *, model_id: str | None = None) -> None:
        """Model load time for routes created from now on (for one model, or the default)."""
        with self.lock:
            if model_id is None:
                self.load_seconds = seconds
            else:
                self.model_load_seconds[model_id] = seconds

    def set_scale_to_zero(self, seconds: float) -> None:
        """Idle time before adaptive deployments with minimum 0 scale to zero; samples at least 4 times in it."""
        if seconds <= 0:
            raise ValueError(f"scale_to_zero_seconds must be positive, got {seconds}")
        with self.lock:
            self.scaler.scale_to_zero_after = seconds
            self.scaler.interval = min(self.scaler.interval, max(seconds / 4, 0.05))

    def set_infer_seconds_per_doc(self, seconds: float) -> None:
        """Service time of one document for requests arriving from now on."""
        with self.lock:
            self.infer_seconds_per_doc = seconds
