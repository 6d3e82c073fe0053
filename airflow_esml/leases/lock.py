"""The lock of a lease document: taken with the operation's change in one conditional write, kept, freed.

Every change of a deployment made through leases happens with its lease document's lock held, so the changes
of one deployment happen one at a time. A lock whose holder died expires after ``lock_ttl``. A conditional
write whose answer was lost (the write landed, then a reset) is recognised by its lock token or ``write_id``,
so it is never mistaken for another operation's write.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from airflow_esml.core.settings import Settings
from airflow_esml.exceptions import LeaseLockTimeoutError, LockLostError
from airflow_esml.leases.document import LeaseDoc
from airflow_esml.leases.documents import LeaseDocuments, Stored
from airflow_esml.leases.lease import Lease, Lock, when

if TYPE_CHECKING:
    from airflow_esml.hooks.ml import ElasticsearchMLHook

log = logging.getLogger("airflow_esml.leases.store")

Change = Callable[[LeaseDoc], LeaseDoc]


@dataclass
class Held:
    """A lease document whose lock this operation holds.

    :param written: the ``write_id`` of every write this holder sent, to recognise one whose answer was lost.
    """

    stored: Stored
    token: str
    reaped: tuple[Lease, ...] = ()
    written: set[str] = field(default_factory=set)


class DocumentLock:
    """The lock steps of :class:`~airflow_esml.leases.store.LeaseStore` (its base class)."""

    hook: ElasticsearchMLHook
    docs: LeaseDocuments
    lock_ttl: float
    lock_wait: float
    clock: Callable[[], float]

    def _lock(self, deployment_id: str, change: Change, *, create: bool, holder: str) -> Held | None:
        """Take the document's lock, making ``change`` and reaping expired leases in the same write."""
        token = uuid.uuid4().hex
        deadline = self.clock() + self.lock_wait
        pause = 0.02
        while True:
            stored = self.docs.get(deployment_id)
            now = self.clock()
            if stored is None:
                if not create:
                    return None
                held = self._create(deployment_id, change, token, holder)
                if held is not None:
                    return held
            elif stored.doc.lock is not None and stored.doc.lock.token == token:
                return Held(stored, token)  # our write landed but its answer was lost
            elif stored.doc.lock_held(now):
                if now > deadline:
                    lock = stored.doc.lock
                    assert lock is not None
                    raise LeaseLockTimeoutError(
                        f"{deployment_id}: the lease document stayed locked by {lock.holder} for {self.lock_wait:.0f}s"
                    )
            else:
                held = self._take(stored, change, token, holder, now)
                if held is not None:
                    return held
            time.sleep(random.uniform(0, pause))
            pause = min(pause * 2, 1.0)

    def _create(self, deployment_id: str, change: Change, token: str, holder: str) -> Held | None:
        status = self.hook.get_deployment(deployment_id)
        baseline = Settings.of(status)
        log.info("%s: first lease; recording the baseline %s", deployment_id, baseline.describe())
        doc = LeaseDoc.new(deployment_id, baseline).accrued(self.clock())
        doc = replace(change(doc), lock=self._new_lock(token, holder))
        version = self.docs.create(doc)
        return None if version is None else Held(Stored(doc, version), token)

    def _take(self, stored: Stored, change: Change, token: str, holder: str, now: float) -> Held | None:
        doc = stored.doc
        if doc.lock is not None:
            log.warning("%s: taking over the expired lease lock of %s", doc.deployment_id, doc.lock.holder)
        doc, reaped = change(doc.accrued(now)).reaped(now)  # the shares up to now, before the leases change
        for lease in reaped:
            log.warning("%s", lease.reap_message(doc.deployment_id, now))
        doc = replace(doc.with_reaped(reaped, now, holder), lock=self._new_lock(token, holder))
        version = self.docs.replace(doc, stored.version)
        return None if version is None else Held(Stored(doc, version), token, reaped)

    def _new_lock(self, token: str, holder: str) -> Lock:
        return Lock(token, holder, self.clock() + self.lock_ttl)

    def _write(self, held: Held, doc: LeaseDoc) -> None:
        """A conditional write under the lock.

        A conflict is our own earlier write whose answer was lost (its ``write_id`` is one of ours: write again
        on its version), or another operation's write after our lock expired (:class:`LockLostError`).
        """
        for _ in range(3):
            doc = replace(doc, write_id=uuid.uuid4().hex)
            held.written.add(doc.write_id)
            version = self.docs.replace(doc, held.stored.version)
            if version is not None:
                held.stored = Stored(doc, version)
                return
            current = self.docs.get(doc.deployment_id)
            if current is None:
                raise LockLostError("the lease document was deleted by another operation while we held its lock")
            if current.doc.write_id == doc.write_id:
                held.stored = Stored(doc, current.version)
                return
            if current.doc.write_id not in held.written:
                raise LockLostError(self._taken_message(held, current))
            log.info("%s: the answer to a write was lost; it had landed, writing on from it", doc.deployment_id)
            held.stored = Stored(held.stored.doc, current.version)
        raise LockLostError("the lease document kept changing under our lock")

    @staticmethod
    def _taken_message(held: Held, current: Stored) -> str:
        mine = held.stored.doc.lock
        expired = f"our lock expired at {when(mine.expires_at)}" if mine else "we held no lock"
        lock = current.doc.lock
        holder = lock.holder if lock is not None and lock.token != held.token else "a lease renewal"
        return f"another operation ({holder}) changed the lease document after {expired}"

    def _check_lock(self, held: Held) -> None:
        lock = held.stored.doc.lock
        if lock is None or self.clock() >= lock.expires_at:
            raise LockLostError("the lease lock expired before the deployment could be updated")

    def _unlock_quietly(self, held: Held) -> None:
        try:
            self._write(held, replace(held.stored.doc, lock=None))
        except Exception as exc:
            log.warning(
                "%s: could not free the lease lock (%s); it expires by itself", held.stored.doc.deployment_id, exc
            )
