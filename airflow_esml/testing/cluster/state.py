"""The data of the simulated cluster: ML nodes, models, deployments (assignments) and their routes.

Pure data plus the derived values Elasticsearch computes from it (``allocation_status``, the stored
assignment state). All instants are values of the cluster's clock; the cluster converts them to wall
time when it renders or audits them. Sources (elastic/elasticsearch):
x-pack/plugin/core/src/main/java/org/elasticsearch/xpack/core/ml/inference/assignment/TrainedModelAssignment.java
x-pack/plugin/core/src/main/java/org/elasticsearch/xpack/core/ml/inference/assignment/AllocationStatus.java
x-pack/plugin/core/src/main/java/org/elasticsearch/xpack/core/ml/inference/assignment/AssignmentState.java
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_esml.testing.cluster.adaptive import AdaptiveSettings, ScalerState
    from airflow_esml.testing.cluster.inference import InferenceEngine

PYTORCH_OVERHEAD_BYTES = 240 * 2**20
ML_MEMORY_FRACTION = 0.3  # xpack.ml.max_machine_memory_percent default (30)
WAIT_FOR_ORDER = {"starting": 0, "started": 1, "fully_allocated": 2}


@dataclass
class MlNode:
    """An ML node.

    :param name: node name (``ml-1``).
    :param node_id: the 22-character node id.
    :param ephemeral_id: the ephemeral id.
    :param processors: ``ml.allocated_processors``.
    :param memory_bytes: ``ml.machine_memory``.
    :param port: transport port, for ``transport_address``.
    :param failed_reason: set by :meth:`Cluster.fail_node`; a failed node takes no new allocations.
    """

    name: str
    node_id: str
    ephemeral_id: str
    processors: int
    memory_bytes: int
    port: int
    failed_reason: str | None = None

    @property
    def ml_memory_bytes(self) -> int:
        return int(self.memory_bytes * ML_MEMORY_FRACTION)


@dataclass
class Model:
    """A trained model.

    :param model_id: the id.
    :param model_bytes: the definition size.
    :param model_type: ``pytorch``, ``tree_ensemble`` or ``lang_ident``.
    :param input_field: the first of ``input.field_names``.
    :param create_wall: creation time (``time.time()``).
    """

    model_id: str
    model_bytes: int
    model_type: str
    input_field: str
    create_wall: float

    @property
    def required_memory_bytes(self) -> int:
        return PYTORCH_OVERHEAD_BYTES + 2 * self.model_bytes if self.model_type == "pytorch" else 0


@dataclass
class Route:
    """One entry of an assignment's routing table (the deployment on one node).

    :param node_id: the node.
    :param current: ``current_allocations``.
    :param target: ``target_allocations``.
    :param state: ``starting``, ``started``, ``stopping`` or ``failed``.
    :param reason: the routing reason (``""`` for healthy routes).
    :param ready_at: when a ``starting`` route becomes ``started``.
    :param apply_at: when a started route applies ``target`` to ``current``.
    :param started_at: when the route became ``started``.
    """

    node_id: str
    current: int
    target: int
    state: str = "starting"
    reason: str = ""
    ready_at: float | None = None
    apply_at: float | None = None
    started_at: float | None = None


@dataclass
class Deployment:
    """A trained model deployment (assignment).

    :param deployment_id: the deployment id.
    :param model_id: the model.
    :param threads: ``threads_per_allocation``.
    :param target: ``task_parameters.number_of_allocations``.
    :param queue_capacity: per-node inference queue capacity.
    :param cache_size: the exact ``cache_size`` string of ``task_parameters``.
    :param cache_bytes: the cache size in bytes.
    :param priority: ``normal`` or ``low``.
    :param model_bytes: size of the model.
    :param created_at: clock instant of creation.
    :param start_wall: wall time of creation (``start_time``).
    :param zero_target_state: ``allocation_status.state`` with no allocation and a target of 0: ``starting``
        before PR #114570, ``fully_allocated`` after it.
    :param waiting_for_allocation: inference requests waiting for the scale from zero.
    :param cache: inputs in the inference cache, oldest first (only used when ``cache_bytes`` > 0).
    """

    deployment_id: str
    model_id: str
    threads: int
    target: int
    queue_capacity: int
    cache_size: str
    cache_bytes: int
    priority: str
    model_bytes: int
    created_at: float
    start_wall: float
    engine: InferenceEngine
    adaptive: AdaptiveSettings | None = None
    scaler: ScalerState | None = None
    state: str = "starting"
    reason: str | None = None
    routes: dict[str, Route] = field(default_factory=dict)
    max_assigned: int = 0
    zero_target_state: str = "fully_allocated"
    waiting_for_allocation: int = 0
    cache: dict[str, None] = field(default_factory=dict)

    def allocation_count(self) -> int:
        """Allocations on ``started`` routes with ``current > 0`` (``calculateAllocationStatus``)."""
        return sum(r.current for r in self.routes.values() if r.state == "started" and r.current > 0)

    def allocation_state(self) -> str:
        """``starting`` / ``started`` / ``fully_allocated`` (``AllocationStatus.calculateState``)."""
        count = self.allocation_count()
        if count == 0 and self.target == 0:
            return self.zero_target_state
        if count == 0:
            return "starting"
        return "fully_allocated" if count >= self.target else "started"

    def placed(self) -> int:
        """Sum of the routes' target allocations."""
        return sum(r.target for r in self.routes.values())

    def stored_state(self) -> str:
        """The stored assignment state: sticky ``stopping``, else ``started`` if any route is started."""
        if self.state == "stopping":
            return "stopping"
        if not self.routes and self.state == "started":
            return "started"  # scaled to zero: the reducer empties the table and leaves the state alone
        return "started" if any(r.state == "started" for r in self.routes.values()) else "starting"

    def computed_state(self) -> str:
        """The stats API's state: ``failed`` when the routing table is non-empty and every route failed."""
        if self.state != "stopping" and self.routes and all(r.state == "failed" for r in self.routes.values()):
            return "failed"
        return self.state

    def adaptive_enabled(self) -> bool:
        return bool(self.adaptive is not None and self.adaptive.enabled)
