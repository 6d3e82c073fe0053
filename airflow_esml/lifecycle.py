"""``scaled_deployment``: scale a deployment up around your own tasks, and always scale it back down.

Usage::

    with scaled_deployment("{{ params.deployment_id }}", number_of_allocations=8):
        infer()  # every task created here runs after the allocations are started

The block becomes a task group: ``acquire`` (setup: take this run's lease, scale to
``max(baseline, every live lease)``), ``wait_for_allocations`` (setup: wait until the allocations are
started), ``keep_lease`` (beside your tasks: renews the lease until it is released), your tasks, and
``release`` (teardown: drop the lease; restore the baseline when no other run holds a lease). The
teardown runs even when your tasks fail, and nothing is passed through XCom: the lease id comes from the
DAG id, the run id and the group id. See ``docs/leases.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import TaskGroup, conf

from airflow_esml.core.params import (
    DEFAULT_ADAPTIVE_POLICY,
    DEFAULT_CONN_ID,
    DEFAULT_LEASE_TTL,
    DEFAULT_LEASES_INDEX,
    DEFAULT_POLL_INTERVAL,
    DEFAULT_TIMEOUT,
    check_adaptive_policy,
    non_negative_int,
    parse_capacity_policy,
    seconds,
)
from airflow_esml.operators.lease import (
    AcquireDeploymentLeaseOperator,
    KeepDeploymentLeaseOperator,
    ReleaseDeploymentLeaseOperator,
)
from airflow_esml.sensors.deployment import AllocationsStartedSensor


@dataclass
class ScaledDeployment:
    """The tasks of a :func:`scaled_deployment` block (``release`` is set when the block ends).

    For tasks created outside the block: ``handle.last_setup >> task >> handle.release``.
    """

    group: TaskGroup
    acquire: AcquireDeploymentLeaseOperator
    wait: AllocationsStartedSensor | None
    keep: KeepDeploymentLeaseOperator | None = None
    release: ReleaseDeploymentLeaseOperator | None = None

    @property
    def setups(self) -> list[Any]:
        return [self.acquire] if self.wait is None else [self.acquire, self.wait]

    @property
    def last_setup(self) -> Any:
        return self.wait or self.acquire

    def after(self, upstream: Any) -> None:
        """Make the block's first tasks wait for ``upstream`` too, while the scale-up starts at once.

        :param upstream: a task or a list of tasks outside the block (the data preparation).
        """
        ours = {self.acquire.task_id, self.keep.task_id if self.keep else None, self.last_setup.task_id}
        firsts = [t for t in self.last_setup.downstream_list if t.task_id not in ours and t is not self.release]
        for task in upstream if isinstance(upstream, (list, tuple)) else [upstream]:
            task >> (firsts or [self.release])


@contextmanager
def scaled_deployment(
    deployment_id: str,
    number_of_allocations: int | str = 8,
    *,
    group_id: str = "scaled_deployment",
    elasticsearch_conn_id: str = DEFAULT_CONN_ID,
    lease_ttl: float | timedelta = DEFAULT_LEASE_TTL,
    renew_interval: float | timedelta | None = None,
    leases_index: str = DEFAULT_LEASES_INDEX,
    on_drift: str = "respect",
    wait: bool = True,
    wait_timeout: float = DEFAULT_TIMEOUT,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
    release_retries: int = 3,
    release_retry_delay: timedelta = timedelta(seconds=30),
    adaptive_policy: str = DEFAULT_ADAPTIVE_POLICY,
    capacity_policy: str | None = "fail",
    autoscaling: bool | None = None,
    after: Any = None,
) -> Iterator[ScaledDeployment]:
    """A task group that holds a lease on ``deployment_id`` around the tasks created inside the ``with`` block.

    :param deployment_id: the deployment to scale, or an inference endpoint id (a default endpoint not yet
        deployed is deployed by ``acquire``). (templated)
    :param number_of_allocations: the allocations the block's tasks need. (templated)
    :param group_id: the task group's id; also the lease name, so two blocks in one DAG hold two leases.
    :param elasticsearch_conn_id: the Airflow connection to the cluster.
    :param lease_ttl: how long the lease outlives a run that died (the ``keep_lease`` task renews it while the
        run's work goes on, however long that is).
    :param renew_interval: seconds between two renewals by ``keep_lease`` (also how long it takes to end after
        the release); default a third of ``lease_ttl``, between 1 and 60 s.
    :param leases_index: the Elasticsearch index of the lease documents.
    :param on_drift: ``"respect"`` (default) keeps a hand-made change as the new baseline, ``"restore"``
        overwrites it; both log a WARNING.
    :param wait: add the ``wait_for_allocations`` setup.
    :param wait_timeout: seconds to wait for the allocations (above 0).
    :param poll_interval: seconds between two looks at the deployment while waiting (above 0).
    :param deferrable: wait, and keep the lease, in the triggerer; defaults to ``[operators] default_deferrable``.
    :param release_retries: retries of the release teardown (a release that fails for good leaves the
        deployment scaled up until the lease expires and the next lease operation or the reaper restores it).
    :param release_retry_delay: the delay between two tries of the release.
    :param adaptive_policy: for a deployment with adaptive allocations on: ``"raise_min"`` (default) raises
        their minimum to ``number_of_allocations`` for the block and keeps them on (the release puts back the
        previous min and max); ``"disable"`` switches them off for the block; ``"fail"`` refuses.
    :param capacity_policy: the acquire's capacity check before a scale-up: ``"fail"`` (default) fails fast
        when the allocations can never fit, ``"fit"`` takes what fits (the wait then waits for that), ``"off"``
        or None does not check.
    :param autoscaling: whether the cluster autoscales ML nodes; None reads its settings.
    :param after: tasks (outside the block) that the block's first tasks also wait for, e.g. the data
        preparation, *without* delaying the scale-up: ``acquire`` starts with the run and the model loads while
        they run, so the run pays ``max(preparation, load time)`` instead of their sum (docs/leases.md,
        "Scale up while the data is prepared"). Do not write ``prepare >> group`` instead: that makes the
        scale-up wait for the preparation.
    """
    check_adaptive_policy(adaptive_policy)
    checking = parse_capacity_policy(capacity_policy)
    wait_timeout = seconds("wait_timeout", wait_timeout)
    poll_interval = seconds("poll_interval", poll_interval)
    release_retries = non_negative_int("release_retries", release_retries)
    common: dict[str, Any] = {
        "deployment_id": deployment_id,
        "elasticsearch_conn_id": elasticsearch_conn_id,
        "leases_index": leases_index,
        "on_drift": on_drift,
    }
    with TaskGroup(group_id=group_id, tooltip=f"scale {deployment_id} for the tasks inside") as group:
        lease = {**common, "lease_name": group.group_id or group_id}
        acquire = AcquireDeploymentLeaseOperator(
            task_id="acquire",
            number_of_allocations=number_of_allocations,
            lease_ttl=lease_ttl,
            adaptive_policy=adaptive_policy,
            capacity_policy=checking,
            autoscaling=autoscaling,
            **lease,
        )
        sensor = None
        if wait:
            sensor = _wait_task(acquire, number_of_allocations, checking, deferrable, poll_interval, wait_timeout)
        keep = KeepDeploymentLeaseOperator(
            task_id="keep_lease", lease_ttl=lease_ttl, renew_interval=renew_interval, deferrable=deferrable, **lease
        )
        handle = ScaledDeployment(group, acquire, sensor, keep)
        ours = {task.task_id for task in (*handle.setups, keep)}
        yield handle
        _close_block(handle, ours, lease, release_retries, release_retry_delay)
        if after is not None:
            handle.after(after)


def _wait_task(
    acquire: AcquireDeploymentLeaseOperator,
    number_of_allocations: int | str,
    checking: str | None,
    deferrable: bool,
    poll_interval: float,
    timeout: float,
) -> AllocationsStartedSensor:
    """The ``wait_for_allocations`` setup: waits for the allocations of ``acquire``'s lease to start.

    Under ``"fit"`` the lease may get fewer allocations than asked: it waits for what the lease was granted.
    """
    granted = f"{{{{ ti.xcom_pull(task_ids='{acquire.task_id}')['granted_allocations'] }}}}"
    return AllocationsStartedSensor(
        task_id="wait_for_allocations",
        deployment_id=acquire.deployment_id,
        min_allocations=granted if checking == "fit" else number_of_allocations,
        elasticsearch_conn_id=acquire.elasticsearch_conn_id,
        deferrable=deferrable,
        poke_interval=poll_interval,
        timeout=timeout,
    )


def _close_block(
    handle: ScaledDeployment, ours: set[str], lease: dict[str, Any], retries: int, retry_delay: timedelta
) -> None:
    """When the block ends: the ``release`` teardown, after the tasks created in the block (those not in ``ours``)."""
    user_tasks = [task for task in handle.group if task.task_id not in ours]
    handle.release = release = ReleaseDeploymentLeaseOperator(
        task_id="release",
        retries=retries,
        retry_delay=retry_delay,
        wait_task_id=handle.wait.task_id if handle.wait is not None else None,
        **lease,
    )
    _wire(handle, user_tasks, release)


def _wire(handle: ScaledDeployment, user_tasks: list[Any], release: ReleaseDeploymentLeaseOperator) -> None:
    """setups >> the user's first tasks; the user's last tasks >> release (a teardown of the setups)."""
    acquire = handle.acquire.as_setup()
    if handle.wait is not None:
        acquire >> handle.wait.as_setup()
    # keep_lease runs beside the work, and is a leaf: upstream of the release it would wait for the release
    # that ends it. As a leaf it counts for the run's state: it fails the run only when the lease was lost.
    acquire >> handle.keep
    ids = {task.task_id for task in user_tasks}
    roots = [task for task in user_tasks if task.upstream_task_ids.isdisjoint(ids)]
    leaves = [task for task in user_tasks if task.downstream_task_ids.isdisjoint(ids)]
    if roots:
        handle.last_setup >> roots
        leaves >> release
    else:
        handle.last_setup >> release
    # not on_failure_fail_dagrun=True: it would make the teardown the run's only leaf, so a failed batch
    # would end in a successful run; a failed release shows as a failed task and its lease expires
    release.as_teardown(setups=handle.setups)
