"""Reads and conditional writes of lease documents in Elasticsearch, each retried with the hook's backoff.

Every write is conditional: a new document with ``op_type=create``, a change with ``if_seq_no`` and
``if_primary_term``. A 409 ``version_conflict_engine_exception`` is not an error here: the write returns
None and the caller reads the document again (a conflict may also be the caller's own earlier attempt
whose response was lost, which the caller recognises by the document's ``write_id`` or lock token).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import elasticsearch

from airflow_esml.core.params import shown
from airflow_esml.exceptions import ConflictingTombstonesError
from airflow_esml.leases.document import LeaseDoc
from airflow_esml.leases.reaped import Reaped, keep_reaped

if TYPE_CHECKING:
    from airflow_esml.hooks.ml import ElasticsearchMLHook

_MISSING: Any = object()
#: the reaper lists at most this many lease documents (one per deployment) per run
MAX_LISTED = 1000
#: the id suffix of the document that keeps a deployment's reap records once its lease document is deleted
TOMBSTONES = "#reaped"


@dataclass(frozen=True)
class Version:
    """A document's ``_seq_no`` and ``_primary_term``: the condition of the next write."""

    seq_no: int
    primary_term: int

    @classmethod
    def of(cls, body: Any) -> Version:
        return cls(int(body["_seq_no"]), int(body["_primary_term"]))


@dataclass(frozen=True)
class Stored:
    """A lease document as read, with the version its next write must name."""

    doc: LeaseDoc
    version: Version


class LeaseDocuments:
    """The lease documents of one index, read and written through ``hook.client`` with ``hook.retry``.

    :param hook: the hook whose client and retry policy are used.
    :param index: the index name (created by Elasticsearch on the first write).
    """

    def __init__(self, hook: ElasticsearchMLHook, index: str) -> None:
        self.hook = hook
        self.index = index

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        """``fn(**kwargs)`` with retries; a 409 answers None and a 404 answers ``_MISSING``."""

        def attempt() -> Any:
            try:
                return fn(index=self.index, **kwargs)
            except elasticsearch.ConflictError:
                return None
            except elasticsearch.NotFoundError:
                return _MISSING

        return self.hook.retry.call(f"{what} in index {shown(self.index)}", attempt)

    def get(self, deployment_id: str) -> Stored | None:
        """The deployment's lease document, or None (also when the index does not exist yet)."""
        response = self._call(
            f"read of the lease document {shown(deployment_id)}", self.hook.client.get, id=deployment_id
        )
        if response is _MISSING or response is None:
            return None
        return Stored(LeaseDoc.from_source(response.body["_source"]), Version.of(response.body))

    def create(self, doc: LeaseDoc) -> Version | None:
        """Write a new document; None when one already exists."""
        response = self._call(
            f"creation of the lease document {shown(doc.deployment_id)}",
            self.hook.client.index,
            id=doc.deployment_id,
            document=doc.to_source(),
            op_type="create",
        )
        return None if response is None or response is _MISSING else Version.of(response.body)

    def replace(self, doc: LeaseDoc, version: Version) -> Version | None:
        """Overwrite the document if it still has ``version``; None on a conflict."""
        response = self._call(
            f"update of the lease document {shown(doc.deployment_id)}",
            self.hook.client.index,
            id=doc.deployment_id,
            document=doc.to_source(),
            if_seq_no=version.seq_no,
            if_primary_term=version.primary_term,
        )
        return None if response is None or response is _MISSING else Version.of(response.body)

    def delete(self, deployment_id: str, version: Version) -> bool:
        """Delete the document if it still has ``version``; False on a conflict or when it is gone."""
        response = self._call(
            f"deletion of the lease document {shown(deployment_id)}",
            self.hook.client.delete,
            id=deployment_id,
            if_seq_no=version.seq_no,
            if_primary_term=version.primary_term,
        )
        return response is not None and response is not _MISSING

    def tombstones(self, deployment_id: str) -> tuple[Reaped, ...]:
        """The reap records kept after the deployment's lease document was deleted (``<deployment_id>#reaped``)."""
        stored = self._tombstones(deployment_id)
        return stored[0] if stored else ()

    def _tombstones(self, deployment_id: str) -> tuple[tuple[Reaped, ...], Version] | None:
        response = self._call(
            f"read of the reap records of {shown(deployment_id)}", self.hook.client.get, id=deployment_id + TOMBSTONES
        )
        if response is _MISSING or response is None:
            return None
        records = tuple(Reaped.from_dict(x) for x in response.body["_source"].get("reaped") or ())
        return records, Version.of(response.body)

    def keep_tombstones(self, deployment_id: str, records: tuple[Reaped, ...], now: float) -> None:
        """Add ``records`` to the deployment's tombstone document (bounded in number and age), before its lease
        document is deleted, so that a reaped run's release still finds them."""
        for _ in range(5):  # written under the lease lock: a conflict is rare (a holder whose lock expired)
            stored = self._tombstones(deployment_id)
            known = stored[0] if stored else ()
            merged = keep_reaped({(r.lease_id, r.at): r for r in (*known, *records)}.values(), now)
            source = {"deployment_id": deployment_id, "reaped": [r.to_dict() for r in merged]}
            key = deployment_id + TOMBSTONES
            what = f"write of the reap records of {shown(deployment_id)}"
            if stored is None:
                response = self._call(what, self.hook.client.index, id=key, document=source, op_type="create")
            else:
                version = stored[1]
                response = self._call(
                    what,
                    self.hook.client.index,
                    id=key,
                    document=source,
                    if_seq_no=version.seq_no,
                    if_primary_term=version.primary_term,
                )
            if response is not None and response is not _MISSING:
                return
        raise ConflictingTombstonesError(f"{deployment_id}: the reap records kept changing while they were written")

    def deployment_ids(self) -> list[str]:
        """The ids of the deployments that have a lease document (none when the index does not exist)."""
        response = self._call(
            "listing of lease documents",
            self.hook.client.search,
            query={"match_all": {}},
            size=MAX_LISTED,
            source=False,
        )
        if response is None or response is _MISSING:
            return []
        return sorted(hit["_id"] for hit in response.body["hits"]["hits"] if not hit["_id"].endswith(TOMBSTONES))
