"""The document store: thread-safe, single-shard, in-memory indices and the one write path.

Optimistic concurrency as Elasticsearch has it (``_seq_no``/``_primary_term``, conditional writes,
``op_type=create``, 409 ``version_conflict_engine_exception``), index auto-creation, and the write path that
single documents, ``_bulk`` and the by-query jobs share (:meth:`IndexStore.execute`). Knows no HTTP: the
documents API (:class:`~airflow_esml.testing.api.documents.DocumentStore`) serves it.
"""

from __future__ import annotations

import base64
import copy
import threading
import uuid
from collections.abc import Callable
from typing import Any

from airflow_esml.testing.docs.model import (
    SHARDS,
    Doc,
    Index,
    WriteOp,
    conflict,
    index_not_found,
    validate_index_name,
)
from airflow_esml.testing.docs.query import query_matcher
from airflow_esml.testing.protocol import AuditLog, EsError

__all__ = ["IndexStore", "Ingestor"]

# Runs ingest (pipelines, semantic_text) over index/create ops in place; set by the simulator.
Ingestor = Callable[[list[WriteOp]], None]


class IndexStore:
    """Thread-safe indices of JSON documents: the Python API and the write path of the document store.

    :param audit: records ``document_written`` (index, id, op, result, seq_no) for each write.
    """

    def __init__(self, *, audit: AuditLog) -> None:
        self._audit = audit
        self._lock = threading.RLock()
        self._indices: dict[str, Index] = {}
        self.ingestor: Ingestor | None = None

    # -- Python API ------------------------------------------------------------------------------

    def get(self, index: str, doc_id: str) -> dict[str, Any] | None:
        """The ``_source`` of a document, or ``None``."""
        with self._lock:
            idx = self._indices.get(index)
            doc = idx.docs.get(doc_id) if idx else None
            return copy.deepcopy(doc.source) if doc else None

    def get_doc(self, index: str, doc_id: str) -> Doc | None:
        """A copy of a stored document (with ``_seq_no``, ``_version`` and inference fields), or ``None``."""
        with self._lock:
            idx = self._indices.get(index)
            doc = idx.docs.get(doc_id) if idx else None
            return copy.deepcopy(doc) if doc else None

    def indices(self) -> list[str]:
        with self._lock:
            return sorted(self._indices)

    def index_info(self, name: str) -> Index:
        """A copy of an index without its documents (mappings, settings); 404 when missing."""
        with self._lock:
            index = self._existing(name)
            return Index(index.name, index.uuid, mappings=copy.deepcopy(index.mappings), settings=dict(index.settings))

    def find_index(self, name: str) -> Index | None:
        """Like :meth:`index_info`, ``None`` when missing."""
        with self._lock:
            return self.index_info(name) if name in self._indices else None

    def snapshot(self, name: str, query: Any) -> list[tuple[str, Doc]]:
        """The matching documents as they are now (the by-query jobs' point-in-time view; read-only)."""
        matches = query_matcher(query)
        with self._lock:
            index = self._existing(name)
            return [(i, d) for i, d in index.docs.items() if matches(d.source)]

    def put_document(self, index: str, doc_id: str, source: dict[str, Any]) -> None:
        """Store a document without ingest (for system indices such as ``.tasks``)."""
        self.execute([WriteOp("index", index, doc_id, source=source, pipeline="_none")], ingest=False)

    def execute(self, ops: list[WriteOp], *, ingest: bool = True, refresh: bool = False) -> list[dict[str, Any]]:
        """Run ingest over the index/create ops (outside the lock), then apply every op in order.

        The store keeps the ops' ``source`` objects (stored sources are never changed in place: readers get
        copies, updates merge into a copy), so callers hand over sources they do not change afterwards.

        :param ops: the writes.
        :param ingest: run pipelines and ``semantic_text`` inference.
        :param refresh: mark results ``forced_refresh``.
        :return: one ``_bulk`` item result per op (``status`` and either the write result or ``error``).
        """
        for op in ops:
            if op.id is None and op.action in ("index", "create"):
                op.id = base64.urlsafe_b64encode(uuid.uuid4().bytes[:15]).decode()
        if ingest and self.ingestor is not None:
            self.ingestor([op for op in ops if op.action in ("index", "create") and op.error is None])
        items = []
        with self._lock:
            for op in ops:
                try:
                    if op.error is not None:
                        raise op.error
                    items.append(self._apply(op, refresh))
                except EsError as err:
                    items.append(
                        {
                            "_index": op.index,
                            "_id": op.id,
                            "status": err.status,
                            "error": {"type": err.type, "reason": err.reason, **err.extra},
                        }
                    )
        return items

    def default_pipeline(self, name: str) -> str | None:
        with self._lock:
            index = self._indices.get(name)
            return index.default_pipeline if index else None

    # -- the write path --------------------------------------------------------------------------

    def _existing(self, name: str) -> Index:
        validate_index_name(name)
        index = self._indices.get(name)
        if index is None:
            raise index_not_found(name)
        return index

    def _auto_create(self, name: str) -> Index:
        validate_index_name(name)
        if name not in self._indices:
            self._indices[name] = Index(name)
            self._audit.record("index_created", index=name)
        return self._indices[name]

    def _apply(self, op: WriteOp, refresh: bool) -> dict[str, Any]:
        assert op.id is not None
        if op.action == "delete":
            index = self._existing(op.index)
            return self._delete(index, op, refresh)
        index = self._auto_create(op.index)
        current = index.docs.get(op.id)
        if op.action == "update":
            source = self._updated_source(index, op, current)
            if source is None:
                assert current is not None
                return self._result(index, op, current, "noop", refresh)
        else:
            source = op.source or {}
        if op.action == "create" and current is not None:
            raise conflict(index, op.id, f"document already exists (current version [{current.version}])")
        if op.cas is not None:
            self._check_cas(index, op.id, current, op.cas)
        version = current.version + 1 if current else index.deleted_versions.pop(op.id, 0) + 1
        doc = Doc(source, version, index.take_seq_no(), op.inference_fields)
        index.docs[op.id] = doc
        return self._result(index, op, doc, "updated" if current else "created", refresh)

    @staticmethod
    def _updated_source(index: Index, op: WriteOp, current: Doc | None) -> dict[str, Any] | None:
        body = op.update or {}
        if current is None:
            if body.get("doc_as_upsert") and isinstance(body.get("doc"), dict):
                return dict(body["doc"])
            if isinstance(body.get("upsert"), dict):
                return dict(body["upsert"])
            raise EsError(
                404,
                "document_missing_exception",
                f"[{op.id}]: document missing",
                extra={"index_uuid": index.uuid, "shard": "0", "index": index.name},
            )
        merged = _merge(copy.deepcopy(current.source), body.get("doc") or {})
        return None if merged == current.source else merged

    def _delete(self, index: Index, op: WriteOp, refresh: bool) -> dict[str, Any]:
        assert op.id is not None
        current = index.docs.get(op.id)
        if op.cas is not None:
            self._check_cas(index, op.id, current, op.cas)
        if current is None:
            version = index.deleted_versions.get(op.id, 0) + 1
            return self._result(index, op, Doc({}, version, index.take_seq_no()), "not_found", refresh)
        del index.docs[op.id]
        index.deleted_versions[op.id] = current.version + 1
        return self._result(index, op, Doc({}, current.version + 1, index.take_seq_no()), "deleted", refresh)

    def _result(self, index: Index, op: WriteOp, doc: Doc, result: str, refresh: bool) -> dict[str, Any]:
        doc_id = op.id
        self._audit.record(
            "document_written", index=index.name, id=doc_id, op=op.label or op.action, result=result, seq_no=doc.seq_no
        )
        body: dict[str, Any] = {
            "_index": index.name,
            "_id": doc_id,
            "_version": doc.version,
            "result": result,
            "_shards": dict(SHARDS),
            "_seq_no": doc.seq_no,
            "_primary_term": index.primary_term,
        }
        if refresh:
            body["forced_refresh"] = True
        body["status"] = {"created": 201, "not_found": 404}.get(result, 200)
        return body

    @staticmethod
    def _check_cas(index: Index, doc_id: str, current: Doc | None, cas: tuple[int, int]) -> None:
        seq_no, term = cas
        required = f"required seqNo [{seq_no}], primary term [{term}]. "
        if current is None:
            raise conflict(index, doc_id, required + "but no document was found")
        if current.seq_no != seq_no or index.primary_term != term:
            raise conflict(
                index,
                doc_id,
                required + f"current document has seqNo [{current.seq_no}] and primary term [{index.primary_term}]",
            )


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target
