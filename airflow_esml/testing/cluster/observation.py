"""What the simulator's users read of the cluster model: a renderer of its state, a deployment's stats and
target, and waiting for an allocation state (see ``docs/simulator-cluster.md``).
"""

from __future__ import annotations

from typing import Any

from airflow_esml.testing.cluster.core import ClusterCore
from airflow_esml.testing.cluster.errors import not_found_deployment
from airflow_esml.testing.cluster.state import WAIT_FOR_ORDER, Deployment
from airflow_esml.testing.cluster.stats import Renderer


class ObservationOps(ClusterCore):
    """Reads of the state: :meth:`renderer`, :meth:`deployment_stats`, :meth:`target`, :meth:`wait_for`."""

    def renderer(self, now: float, human: bool = False) -> Renderer:
        """A renderer of the current state (call with the lock held)."""
        return Renderer(self.version, self.nodes, self.wall, now, human)

    def _deployment(self, deployment_id: str) -> Deployment:
        """The deployment (the caller holds the lock); 404 when unknown."""
        dep = self.deployments.get(deployment_id)
        if dep is None:
            raise not_found_deployment(deployment_id)
        return dep

    def deployment_stats(self, deployment_id: str) -> dict[str, Any]:
        """``deployment_stats`` of one deployment, as the stats API returns it."""
        with self.lock:
            now = self._advance()
            dep = self._deployment(deployment_id)
            return self.renderer(now).deployment_stats(dep)

    def target(self, deployment_id: str) -> int:
        """The current ``task_parameters.number_of_allocations``."""
        with self.lock:
            self._advance()
            dep = self._deployment(deployment_id)
            return dep.target

    def wait_for(self, deployment_id: str, state: str = "fully_allocated", timeout: float = 10.0) -> dict[str, Any]:
        """Block until ``allocation_status.state`` ≥ ``state``; return ``deployment_stats``."""
        with self.lock:
            deadline = self._now() + timeout
            while True:
                now = self._advance()
                dep = self._deployment(deployment_id)
                if WAIT_FOR_ORDER[dep.allocation_state()] >= WAIT_FOR_ORDER[state]:
                    return self.renderer(now).deployment_stats(dep)
                if now >= deadline:
                    raise TimeoutError(f"{deployment_id} did not reach {state} within {timeout}s")
                self._wait_changes(deadline)
