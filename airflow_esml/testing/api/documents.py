"""The documents API: Elasticsearch's document, index and search endpoints over the document store.

Enough for optimistic-concurrency users (leases): get, index, create and delete with conditional writes
(``if_seq_no``/``if_primary_term``, ``op_type=create``), refresh, ``_search`` and ``_count``; and for batch
inference: index creation with mappings (``semantic_text``) and settings (``index.default_pipeline``) and
``?pipeline=``. The store and its write path are in :mod:`airflow_esml.testing.docs.store`.
"""

from __future__ import annotations

import copy
from typing import Any

from airflow_esml.testing.docs.model import Doc, Index, WriteOp, validate_index_name
from airflow_esml.testing.docs.query import query_matcher
from airflow_esml.testing.docs.store import IndexStore, Ingestor
from airflow_esml.testing.docs.store import _merge as _merge  # the old import path
from airflow_esml.testing.protocol import EsError, Route, SimRequest, SimResponse

__all__ = ["DocumentStore", "Ingestor", "validate_index_name"]


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


def _flatten_settings(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten_settings(value, name + "."))
        else:
            flat[name.removeprefix("index.")] = value
    return flat


class DocumentStore(IndexStore):
    """The store (:class:`~airflow_esml.testing.docs.store.IndexStore`) served by :meth:`routes`.

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
        ("GET", "/{index}/_mapping"): "mapping",
        ("POST", "/{index}/_refresh"): "refresh",
        ("GET", "/{index}/_refresh"): "refresh",
        ("GET", "/{index}/_search"): "search",
        ("POST", "/{index}/_search"): "search",
        ("GET", "/{index}/_count"): "count",
        ("POST", "/{index}/_count"): "count",
    }

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
            "mapping": self._get_mapping,
            "refresh": self._refresh,
            "search": self._search,
            "count": self._count,
        }
        return [(m, t, handlers[name]) for (m, t), name in self.endpoint_names.items()]

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
        validate_index_name(request.path_params["index"])
        op = WriteOp(
            "create" if create else "index",
            request.path_params["index"],
            request.path_params.get("id"),
            source=request.body,
            pipeline=request.query.get("pipeline"),
            cas=cas,
        )
        return self._single(op, request)

    def _single(self, op: WriteOp, request: SimRequest) -> SimResponse:
        op.label = request.method
        (item,) = self.execute([op], refresh=request.query.get("refresh") in ("", "true"))
        if "error" in item:
            error = item["error"]
            extra = {k: v for k, v in error.items() if k not in ("type", "reason")}
            raise EsError(item["status"], error["type"], error["reason"], extra=extra)
        return SimResponse(item.pop("status"), item)

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
        op = WriteOp("delete", request.path_params["index"], request.path_params["id"], cas=cas)
        with self._lock:
            self._existing(op.index)
        return self._single(op, request)

    # -- index handlers --------------------------------------------------------------------------

    def _create_index(self, request: SimRequest) -> SimResponse:
        name = request.path_params["index"]
        body = request.body if isinstance(request.body, dict) else {}
        mappings = body.get("mappings") or {}
        settings = _flatten_settings(body.get("settings") or {})
        if not isinstance(mappings, dict):
            raise EsError(400, "mapper_parsing_exception", "Failed to parse mapping: mappings must be an object")
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
            index = self._auto_create(name)
            index.mappings = copy.deepcopy(mappings)
            index.settings = settings
        return SimResponse(200, {"acknowledged": True, "shards_acknowledged": True, "index": name})

    def _index_exists(self, request: SimRequest) -> SimResponse:
        with self._lock:
            return SimResponse(200 if request.path_params["index"] in self._indices else 404, None)

    def _get_index(self, request: SimRequest) -> SimResponse:
        with self._lock:
            index = self._existing(request.path_params["index"])
            settings = {
                "number_of_shards": str(index.number_of_shards),
                "number_of_replicas": "1",
                **{k: str(v) for k, v in index.settings.items() if k != "number_of_shards"},
                "uuid": index.uuid,
                "provided_name": index.name,
            }
            body = {"aliases": {}, "mappings": copy.deepcopy(index.mappings), "settings": {"index": settings}}
            return SimResponse(200, {index.name: body})

    def _get_mapping(self, request: SimRequest) -> SimResponse:
        with self._lock:
            index = self._existing(request.path_params["index"])
            return SimResponse(200, {index.name: {"mappings": copy.deepcopy(index.mappings)}})

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

    def _matching(self, request: SimRequest) -> tuple[Index, list[tuple[str, Doc]]]:
        body = request.body if isinstance(request.body, dict) else {}
        matches = query_matcher(body.get("query", {"match_all": {}}))
        index = self._existing(request.path_params["index"])
        return index, [(i, d) for i, d in index.docs.items() if matches(d.source)]

    def _count(self, request: SimRequest) -> SimResponse:
        with self._lock:
            _, found = self._matching(request)
        shards = {"total": 1, "successful": 1, "skipped": 0, "failed": 0}
        return SimResponse(200, {"count": len(found), "_shards": shards})

    def _search(self, request: SimRequest) -> SimResponse:
        body = request.body if isinstance(request.body, dict) else {}
        size, start = _int_param(request, "size"), _int_param(request, "from")
        size = int(body.get("size", 10)) if size is None else size
        start = int(body.get("from", 0)) if start is None else start
        flag = request.query.get("seq_no_primary_term", body.get("seq_no_primary_term", False))
        with_seq = flag in (True, "true", "")
        fields = body.get("fields") or []
        with self._lock:
            index, found = self._matching(request)
            hits = []
            for doc_id, doc in found[start : start + size]:
                hit: dict[str, Any] = {"_index": index.name, "_id": doc_id, "_score": 1.0}
                if with_seq:
                    hit.update(_seq_no=doc.seq_no, _primary_term=index.primary_term)
                hit["_source"] = copy.deepcopy(doc.source)
                if "_inference_fields" in fields and doc.inference_fields:
                    hit["fields"] = {"_inference_fields": [copy.deepcopy(doc.inference_fields)]}
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
