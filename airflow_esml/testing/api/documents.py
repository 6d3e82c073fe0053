"""A single-shard, in-memory document store with Elasticsearch's document and index APIs.

Enough for optimistic-concurrency users (leases): ``_seq_no``/``_primary_term``, conditional writes
(``if_seq_no``/``if_primary_term``), ``op_type=create``, 409 ``version_conflict_engine_exception``,
index auto-creation, get, delete, refresh and a ``match_all``/``term`` search.
"""

from __future__ import annotations

import base64
import copy
import os
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from airflow_esml.testing.protocol import AuditLog, EsError, Route, SimRequest, SimResponse

_SHARDS = {"total": 2, "successful": 1, "failed": 0}
_INVALID_CHARS = set('\\/*?"<>| ,#:')


@dataclass
class _Doc:
    source: dict[str, Any]
    version: int
    seq_no: int


@dataclass
class _Index:
    name: str
    uuid: str = field(default_factory=lambda: base64.urlsafe_b64encode(os.urandom(16)).decode()[:22])
    docs: dict[str, _Doc] = field(default_factory=dict)
    deleted_versions: dict[str, int] = field(default_factory=dict)
    next_seq_no: int = 0
    primary_term: int = 1

    def take_seq_no(self) -> int:
        self.next_seq_no += 1
        return self.next_seq_no - 1


def _index_not_found(name: str) -> EsError:
    return EsError(
        404,
        "index_not_found_exception",
        f"no such index [{name}]",
        extra={"resource.type": "index_or_alias", "resource.id": name, "index_uuid": "_na_", "index": name},
    )


def _conflict(index: _Index, doc_id: str, reason: str) -> EsError:
    return EsError(
        409,
        "version_conflict_engine_exception",
        f"[{doc_id}]: version conflict, {reason}",
        extra={"index_uuid": index.uuid, "shard": "0", "index": index.name},
    )


def validate_index_name(name: str) -> None:
    """Raise ES's 400 ``invalid_index_name_exception`` for names Elasticsearch refuses."""
    problem = None
    if name in (".", ".."):
        problem = "must not be '.' or '..'"
    elif name[:1] in ("_", "-", "+"):
        problem = "must not start with '_', '-', or '+'"
    elif name != name.lower():
        problem = "must be lowercase"
    elif _INVALID_CHARS & set(name):
        problem = (
            "must not contain the following characters ['\\', '/', '*', '?', '\"', '<', '>', '|', ' ', ',', '#', ':']"
        )
    if problem:
        raise EsError(
            400,
            "invalid_index_name_exception",
            f"Invalid index name [{name}], {problem}",
            extra={"index_uuid": "_na_", "index": name},
        )


def _int_param(request: SimRequest, name: str) -> int | None:
    value = request.query.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise EsError(
            400, "illegal_argument_exception", f"Failed to parse int parameter [{name}] with value [{value}]"
        ) from None


def _cas(request: SimRequest, *, create: bool) -> tuple[int, int] | None:
    if_seq_no, if_term = _int_param(request, "if_seq_no"), _int_param(request, "if_primary_term")
    errors = []
    if if_seq_no is not None and not if_term:
        errors.append("ifSeqNo is set, but primary term is [0]")
    if if_term is not None and if_seq_no is None:
        errors.append("ifSeqNo is unassigned, but primary term is [" + str(if_term) + "]")
    if create and if_seq_no is not None:
        errors.append("create operations do not support compare and set. use index instead")
    if errors:
        numbered = "".join(f"{i}: {e};" for i, e in enumerate(errors, 1))
        raise EsError(400, "action_request_validation_exception", f"Validation Failed: {numbered}")
    return None if if_seq_no is None or if_term is None else (if_seq_no, if_term)


class DocumentStore:
    """Thread-safe indices of JSON documents, served by :meth:`routes`.

    :param audit: records ``document_written`` (index, id, op, result, seq_no) for each write.
    """

    endpoint_names: dict[tuple[str, str], str] = {
        ("PUT", "/{index}/_doc/{id}"): "doc_index",
        ("POST", "/{index}/_doc/{id}"): "doc_index",
        ("POST", "/{index}/_doc"): "doc_index",
        ("PUT", "/{index}/_create/{id}"): "doc_create",
        ("POST", "/{index}/_create/{id}"): "doc_create",
        ("GET", "/{index}/_doc/{id}"): "doc_get",
        ("HEAD", "/{index}/_doc/{id}"): "doc_exists",
        ("DELETE", "/{index}/_doc/{id}"): "doc_delete",
        ("PUT", "/{index}"): "index_create",
        ("HEAD", "/{index}"): "index_exists",
        ("GET", "/{index}"): "index_get",
        ("DELETE", "/{index}"): "index_delete",
        ("POST", "/{index}/_refresh"): "refresh",
        ("GET", "/{index}/_refresh"): "refresh",
        ("GET", "/{index}/_search"): "search",
        ("POST", "/{index}/_search"): "search",
    }

    def __init__(self, *, audit: AuditLog) -> None:
        self._audit = audit
        self._lock = threading.RLock()
        self._indices: dict[str, _Index] = {}

    def routes(self) -> list[Route]:
        handlers = {
            "doc_index": self._index_doc,
            "doc_create": self._create_doc,
            "doc_get": self._get_doc,
            "doc_exists": self._doc_exists,
            "doc_delete": self._delete_doc,
            "index_create": self._create_index,
            "index_exists": self._index_exists,
            "index_get": self._get_index,
            "index_delete": self._delete_index,
            "refresh": self._refresh,
            "search": self._search,
        }
        return [(m, t, handlers[name]) for (m, t), name in self.endpoint_names.items()]

    # -- Python API ------------------------------------------------------------------------------

    def get(self, index: str, doc_id: str) -> dict[str, Any] | None:
        """The ``_source`` of a document, or ``None``."""
        with self._lock:
            idx = self._indices.get(index)
            doc = idx.docs.get(doc_id) if idx else None
            return copy.deepcopy(doc.source) if doc else None

    def indices(self) -> list[str]:
        with self._lock:
            return sorted(self._indices)

    # -- helpers ---------------------------------------------------------------------------------

    def _existing(self, name: str) -> _Index:
        validate_index_name(name)
        index = self._indices.get(name)
        if index is None:
            raise _index_not_found(name)
        return index

    def _auto_create(self, name: str) -> _Index:
        validate_index_name(name)
        if name not in self._indices:
            self._indices[name] = _Index(name)
            self._audit.record("index_created", index=name)
        return self._indices[name]

    def _write_body(self, request: SimRequest, index: _Index, doc_id: str, doc: _Doc, result: str) -> SimResponse:
        self._audit.record(
            "document_written", index=index.name, id=doc_id, op=request.method, result=result, seq_no=doc.seq_no
        )
        body: dict[str, Any] = {
            "_index": index.name,
            "_id": doc_id,
            "_version": doc.version,
            "result": result,
            "_shards": dict(_SHARDS),
            "_seq_no": doc.seq_no,
            "_primary_term": index.primary_term,
        }
        if request.query.get("refresh") in ("", "true"):
            body["forced_refresh"] = True
        return SimResponse({"created": 201, "not_found": 404}.get(result, 200), body)

    # -- document handlers -----------------------------------------------------------------------

    def _index_doc(self, request: SimRequest) -> SimResponse:
        create = request.query.get("op_type") == "create"
        return self._write(request, create=create)

    def _create_doc(self, request: SimRequest) -> SimResponse:
        return self._write(request, create=True)

    def _write(self, request: SimRequest, *, create: bool) -> SimResponse:
        if not isinstance(request.body, dict):
            raise EsError(400, "parse_exception", "request body is required")
        cas = _cas(request, create=create)
        doc_id = request.path_params.get("id") or base64.urlsafe_b64encode(uuid.uuid4().bytes[:15]).decode()
        with self._lock:
            index = self._auto_create(request.path_params["index"])
            current = index.docs.get(doc_id)
            if create and current is not None:
                raise _conflict(index, doc_id, f"document already exists (current version [{current.version}])")
            if cas is not None:
                self._check_cas(index, doc_id, current, cas)
            version = current.version + 1 if current else index.deleted_versions.pop(doc_id, 0) + 1
            doc = _Doc(copy.deepcopy(request.body), version, index.take_seq_no())
            index.docs[doc_id] = doc
            return self._write_body(request, index, doc_id, doc, "updated" if current else "created")

    @staticmethod
    def _check_cas(index: _Index, doc_id: str, current: _Doc | None, cas: tuple[int, int]) -> None:
        seq_no, term = cas
        required = f"required seqNo [{seq_no}], primary term [{term}]. "
        if current is None:
            raise _conflict(index, doc_id, required + "but no document was found")
        if current.seq_no != seq_no or index.primary_term != term:
            raise _conflict(
                index,
                doc_id,
                required + f"current document has seqNo [{current.seq_no}] and primary term [{index.primary_term}]",
            )

    def _get_doc(self, request: SimRequest) -> SimResponse:
        doc_id = request.path_params["id"]
        with self._lock:
            index = self._existing(request.path_params["index"])
            doc = index.docs.get(doc_id)
            if doc is None:
                return SimResponse(404, {"_index": index.name, "_id": doc_id, "found": False})
            return SimResponse(
                200,
                {
                    "_index": index.name,
                    "_id": doc_id,
                    "_version": doc.version,
                    "_seq_no": doc.seq_no,
                    "_primary_term": index.primary_term,
                    "found": True,
                    "_source": copy.deepcopy(doc.source),
                },
            )

    def _doc_exists(self, request: SimRequest) -> SimResponse:
        with self._lock:
            index = self._indices.get(request.path_params["index"])
            found = index is not None and request.path_params["id"] in index.docs
        return SimResponse(200 if found else 404, None)

    def _delete_doc(self, request: SimRequest) -> SimResponse:
        cas = _cas(request, create=False)
        doc_id = request.path_params["id"]
        with self._lock:
            index = self._existing(request.path_params["index"])
            current = index.docs.get(doc_id)
            if cas is not None:
                self._check_cas(index, doc_id, current, cas)
            if current is None:
                version = index.deleted_versions.get(doc_id, 0) + 1
                return self._write_body(request, index, doc_id, _Doc({}, version, index.take_seq_no()), "not_found")
            del index.docs[doc_id]
            index.deleted_versions[doc_id] = current.version + 1
            doc = _Doc({}, current.version + 1, index.take_seq_no())
            return self._write_body(request, index, doc_id, doc, "deleted")

    # -- index handlers --------------------------------------------------------------------------

    def _create_index(self, request: SimRequest) -> SimResponse:
        name = request.path_params["index"]
        with self._lock:
            validate_index_name(name)
            if name in self._indices:
                index = self._indices[name]
                raise EsError(
                    400,
                    "resource_already_exists_exception",
                    f"index [{name}/{index.uuid}] already exists",
                    extra={"index_uuid": index.uuid, "index": name},
                )
            self._auto_create(name)
        return SimResponse(200, {"acknowledged": True, "shards_acknowledged": True, "index": name})

    def _index_exists(self, request: SimRequest) -> SimResponse:
        with self._lock:
            return SimResponse(200 if request.path_params["index"] in self._indices else 404, None)

    def _get_index(self, request: SimRequest) -> SimResponse:
        with self._lock:
            index = self._existing(request.path_params["index"])
            settings = {
                "index": {
                    "number_of_shards": "1",
                    "number_of_replicas": "1",
                    "uuid": index.uuid,
                    "provided_name": index.name,
                }
            }
            return SimResponse(200, {index.name: {"aliases": {}, "mappings": {}, "settings": settings}})

    def _delete_index(self, request: SimRequest) -> SimResponse:
        with self._lock:
            index = self._existing(request.path_params["index"])
            del self._indices[index.name]
            self._audit.record("index_deleted", index=index.name)
        return SimResponse(200, {"acknowledged": True})

    def _refresh(self, request: SimRequest) -> SimResponse:
        with self._lock:
            self._existing(request.path_params["index"])
        return SimResponse(200, {"_shards": {"total": 2, "successful": 1, "failed": 0}})

    # -- search ----------------------------------------------------------------------------------

    def _search(self, request: SimRequest) -> SimResponse:
        body = request.body if isinstance(request.body, dict) else {}
        matches = _query_matcher(body.get("query", {"match_all": {}}))
        size, start = _int_param(request, "size"), _int_param(request, "from")
        size = int(body.get("size", 10)) if size is None else size
        start = int(body.get("from", 0)) if start is None else start
        flag = request.query.get("seq_no_primary_term", body.get("seq_no_primary_term", False))
        with_seq = flag in (True, "true", "")
        with self._lock:
            index = self._existing(request.path_params["index"])
            found = [(i, d) for i, d in index.docs.items() if matches(d.source)]
            hits = []
            for doc_id, doc in found[start : start + size]:
                hit: dict[str, Any] = {"_index": index.name, "_id": doc_id, "_score": 1.0}
                if with_seq:
                    hit.update(_seq_no=doc.seq_no, _primary_term=index.primary_term)
                hit["_source"] = copy.deepcopy(doc.source)
                hits.append(hit)
        return SimResponse(
            200,
            {
                "took": 1,
                "timed_out": False,
                "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                "hits": {
                    "total": {"value": len(found), "relation": "eq"},
                    "max_score": 1.0 if hits else None,
                    "hits": hits,
                },
            },
        )


def _query_matcher(query: Any) -> Any:
    if not isinstance(query, dict) or len(query) != 1:
        raise EsError(400, "parsing_exception", "[query] malformed query, expected a single query object")
    ((kind, spec),) = query.items()
    if kind == "match_all":
        return lambda source: True
    if kind == "term" and isinstance(spec, dict) and len(spec) == 1:
        ((field_name, value),) = spec.items()
        if isinstance(value, dict):
            value = value.get("value")
        return lambda source: _field(source, field_name) == value
    raise EsError(
        400,
        "illegal_argument_exception",
        f"the simulator supports only [match_all] and single-field [term] queries, got [{kind}]",
    )


def _field(source: dict[str, Any], dotted: str) -> Any:
    value: Any = source
    for part in dotted.removesuffix(".keyword").split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value
