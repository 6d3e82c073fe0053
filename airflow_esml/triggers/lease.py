"""LeaseKeeperTrigger: keeps a run's lease alive from the triggerer while the run's work goes on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_esml.core.params import DEFAULT_LOCK_TTL

if TYPE_CHECKING:
    from airflow_esml.leases.reaped import Renewal
    from airflow_esml.leases.store import LeaseStore

#: seconds before a renewal that failed (cluster unreachable, lock held long) is tried again, at most
RETRY_PAUSE = 5.0
#: seconds between two reads of the lease document between renewals, to notice a release early
CHECK_EVERY = 5.0


class LeaseKeeperTrigger(BaseTrigger):
    """Renews a lease every ``renew_interval`` seconds until it is released (or found reaped).

    Between renewals it reads the lease document every few seconds, so it ends soon after the release.

    Each renewal extends the lease to now + ``lease_ttl`` with one conditional write that does not touch the
    deployment (:meth:`~airflow_esml.leases.store.LeaseStore.renew`, run in a thread). Yields exactly one
    event: ``{"status": "success", "state": "released"}`` once the lease is gone without a trace (the run's
    release ran), or ``{"status": "failed", "state": "lost", "message": ...}`` when it was reaped. A renewal
    that fails is tried again after a few seconds; it never ends the trigger. When the run dies, Airflow
    cancels the trigger, renewals stop, and the lease expires ``lease_ttl`` after the last one. Duplicate
    copies (triggerer HA) only renew twice.

    :param deployment_id: the deployment.
    :param lease_id: the lease to keep.
    :param elasticsearch_conn_id: the Airflow connection to the cluster.
    :param leases_index: the index of the lease documents.
    :param lease_ttl: seconds each renewal adds from now.
    :param renew_interval: seconds between two renewals.
    :param lock_ttl: the lease lock's time to live (a renewal waits up to ``lock_ttl + 30`` s for the lock).
    """

    def __init__(
        self,
        *,
        deployment_id: str,
        lease_id: str,
        elasticsearch_conn_id: str,
        leases_index: str,
        lease_ttl: float,
        renew_interval: float,
        lock_ttl: float = DEFAULT_LOCK_TTL,
    ) -> None:
        super().__init__()
        self.deployment_id = deployment_id
        self.lease_id = lease_id
        self.elasticsearch_conn_id = elasticsearch_conn_id
        self.leases_index = leases_index
        self.lease_ttl = lease_ttl
        self.renew_interval = renew_interval
        self.lock_ttl = lock_ttl

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "deployment_id": self.deployment_id,
                "lease_id": self.lease_id,
                "elasticsearch_conn_id": self.elasticsearch_conn_id,
                "leases_index": self.leases_index,
                "lease_ttl": self.lease_ttl,
                "renew_interval": self.renew_interval,
                "lock_ttl": self.lock_ttl,
            },
        )

    def _store(self) -> LeaseStore:
        from airflow_esml.hooks.ml import ElasticsearchMLHook
        from airflow_esml.leases.store import LeaseStore

        hook = ElasticsearchMLHook(self.elasticsearch_conn_id)
        return LeaseStore(hook, index=self.leases_index, lock_ttl=self.lock_ttl)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        store = self._store()
        try:
            renewal = await self._keep(store)
        finally:
            store.hook.close()
        yield TriggerEvent(renewal.to_event())

    async def _keep(self, store: LeaseStore) -> Renewal:
        """Renew until the lease is gone; the renewal that found it gone."""
        while True:
            try:
                renewal = await asyncio.to_thread(store.renew, self.deployment_id, self.lease_id, self.lease_ttl)
            except Exception as exc:  # the next try may work; the lease lasts lease_ttl after the last renewal
                pause = min(self.renew_interval, RETRY_PAUSE)
                self.log.warning("%s: renewing lease %s failed (%s); again in %.0fs", self.deployment_id,
                                 self.lease_id, exc, pause)  # fmt: skip
                await asyncio.sleep(pause)
                continue
            if renewal.state != "renewed":
                return renewal
            self.log.debug("%s: lease %s renewed until %s", self.deployment_id, self.lease_id, renewal.expires_at)
            await self._until_next_renewal(store)

    async def _until_next_renewal(self, store: LeaseStore) -> None:
        """Sleep ``renew_interval``, looking every :data:`CHECK_EVERY` seconds whether the lease is still there.

        A read is cheap and never conflicts with other writers; it lets the keeper end within seconds of the
        run's release instead of within a whole renew interval, which would hold the DAG run open.
        """
        deadline = time.monotonic() + self.renew_interval
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(CHECK_EVERY, left))
            try:
                doc = await asyncio.to_thread(store.read, self.deployment_id)
            except Exception:  # the renewal at the deadline tells what happened
                continue
            if doc is None or doc.lease(self.lease_id) is None:
                return  # gone: the next renewal says whether it was released or reaped
