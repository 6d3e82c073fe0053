"""Helpers for the lease tests: a store on the simulator, the invariant checked against the audit log, and the
values of the pure lease tests (a deployment status, a lease, a lease document)."""

from __future__ import annotations

from dataclasses import dataclass

from airflow_esml.core.params import DEFAULT_LEASES_INDEX
from airflow_esml.core.settings import Settings
from airflow_esml.core.status import AdaptiveAllocations, DeploymentStatus
from airflow_esml.hooks.ml import ElasticsearchMLHook
from airflow_esml.hooks.retry import RetryPolicy
from airflow_esml.leases.document import LeaseDoc
from airflow_esml.leases.lease import Lease
from airflow_esml.leases.store import LeaseStore
from airflow_esml.testing import Simulator

#: adaptive allocations on, from 1 to 4
ADAPTIVE = AdaptiveAllocations(True, 1, 4)
#: enough attempts that ~20% transient faults never exhaust them, with millisecond backoff
PATIENT = RetryPolicy(attempts=12, initial_wait=0.005, max_wait=0.05)


def make_store(*, retry: RetryPolicy | None = None, lock_ttl: float = 10.0) -> LeaseStore:
    """A store on ``elasticsearch_default`` (the ``sim`` fixture points it at the simulator)."""
    return LeaseStore(ElasticsearchMLHook(retry=retry), lock_ttl=lock_ttl)


def status(target: int, adaptive: AdaptiveAllocations | None = None) -> DeploymentStatus:
    """A started deployment ``my-e5`` with ``target`` allocations, all of them started."""
    return DeploymentStatus(
        "my-e5", "my-e5", "started", target, target, "fully_allocated", adaptive_allocations=adaptive
    )


def lease(lease_id: str, allocations: int, expires_at: float = 100.0, adaptive_policy: str = "raise_min") -> Lease:
    """A lease acquired at 0 by DAG ``d``."""
    return Lease(lease_id, allocations, 0.0, expires_at, {"dag_id": "d"}, adaptive_policy)  # type: ignore[arg-type]


def doc(baseline: Settings, *leases: Lease, applied: Settings | None = None) -> LeaseDoc:
    """The lease document of ``my-e5`` with ``baseline`` (recorded as the original one too) and ``leases``."""
    return LeaseDoc("my-e5", baseline, baseline, tuple(leases), applied=applied)


def lease_doc(sim: Simulator, deployment_id: str = "my-e5") -> dict | None:
    """The lease document as the simulator holds it."""
    return sim.documents.get(DEFAULT_LEASES_INDEX, deployment_id)


@dataclass
class Held:
    """One lease as a run saw it: held from ``start`` (acquire returned) to ``end`` (release called)."""

    name: str
    allocations: int
    start: float
    end: float


def target_at(history: list[tuple[float, int]], when: float) -> int:
    """The deployment's target at ``when``, from ``(time, target)`` changes."""
    value = None
    for at, target in history:
        if at > when:
            break
        value = target
    assert value is not None, f"no target known at {when}"
    return value


def invariant_violations(history: list[tuple[float, int]], held: list[Held]) -> list[str]:
    """Every instant at which a held lease had less than it asked for."""
    problems = []
    for lease in held:
        instants = [lease.start] + [at for at, _ in history if lease.start <= at <= lease.end]
        for when in instants:
            target = target_at(history, when)
            if target < lease.allocations:
                problems.append(f"{lease.name} asked {lease.allocations}, target {target} at {when:.3f}")
    return problems
