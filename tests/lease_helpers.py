"""Helpers for the lease tests: a store on the simulator, and the invariant checked against the audit log."""

from __future__ import annotations

from dataclasses import dataclass

from airflow_esml.core.params import DEFAULT_LEASES_INDEX
from airflow_esml.hooks.ml import ElasticsearchMLHook
from airflow_esml.hooks.retry import RetryPolicy
from airflow_esml.leases.store import LeaseStore
from airflow_esml.testing import Simulator

#: enough attempts that ~20% transient faults never exhaust them, with millisecond backoff
PATIENT = RetryPolicy(attempts=12, initial_wait=0.005, max_wait=0.05)


def make_store(*, retry: RetryPolicy | None = None, lock_ttl: float = 10.0) -> LeaseStore:
    """A store on ``elasticsearch_default`` (the ``sim`` fixture points it at the simulator)."""
    return LeaseStore(ElasticsearchMLHook(retry=retry), lock_ttl=lock_ttl)


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
