"""``POST|PUT [/<index>]/_bulk``: NDJSON actions (``index``, ``create``, ``update``, ``delete``), per-item results.

As ``RestBulkAction`` / ``BulkRequestParser`` in elastic/elasticsearch: malformed action lines fail the whole
request with 400; item failures (ingest, version conflicts, missing documents) are per item, with ``errors: true``.
"""

from __future__ import annotations

import time
from typing import Any

from airflow_esml.testing.api.documents import DocumentStore
from airflow_esml.testing.docs.model import WriteOp
from airflow_esml.testing.protocol import EsError, Route, SimRequest, SimResponse

ACTIONS = ("create", "delete", "index", "update")


def _malformed(line: int, found: str) -> EsError:
    return EsError(
        400,
        "illegal_argument_exception",
        f"Malformed action/metadata line [{line}], expected one of [create, delete, index, update] but found [{found}]",
    )


def parse_bulk(lines: list[Any], default_index: str | None, default_pipeline: str | None) -> list[WriteOp]:
    """The operations of a bulk body (action lines followed by their source lines)."""
    ops: list[WriteOp] = []
    position = 0
    while position < len(lines):
        action_line = lines[position]
        if not isinstance(action_line, dict) or len(action_line) != 1:
            raise _malformed(position + 1, "START_ARRAY" if isinstance(action_line, list) else "VALUE")
        ((action, meta),) = action_line.items()
        if action not in ACTIONS:
            raise _malformed(position + 1, action)
        meta = meta or {}
        index = meta.get("_index", default_index)
        if not index:
            raise EsError(400, "action_request_validation_exception", "Validation Failed: 1: index is missing;")
        cas = None
        if meta.get("if_seq_no") is not None and meta.get("if_primary_term") is not None:
            cas = (int(meta["if_seq_no"]), int(meta["if_primary_term"]))
        op = WriteOp(action, index, meta.get("_id"), pipeline=meta.get("pipeline", default_pipeline), cas=cas)
        position += 1
        if action == "delete":
            if op.id is None:
                raise EsError(400, "action_request_validation_exception", "Validation Failed: 1: id is missing;")
        else:
            if position >= len(lines) or not isinstance(lines[position], dict):
                raise EsError(
                    400, "illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]"
                )
            body = lines[position]
            position += 1
            if action == "update":
                if op.id is None:
                    raise EsError(400, "action_request_validation_exception", "Validation Failed: 1: id is missing;")
                op.update = body
            else:
                op.source = body
        ops.append(op)
    return ops


class BulkApi:
    """The ``_bulk`` handler over the document store."""

    endpoint_names: dict[tuple[str, str], str] = {
        ("POST", "/_bulk"): "bulk",
        ("PUT", "/_bulk"): "bulk",
        ("POST", "/{index}/_bulk"): "bulk",
        ("PUT", "/{index}/_bulk"): "bulk",
    }

    def __init__(self, store: DocumentStore) -> None:
        self.store = store

    def routes(self) -> list[Route]:
        return [(m, t, self._bulk) for (m, t) in self.endpoint_names]

    def _bulk(self, request: SimRequest) -> SimResponse:
        started = time.monotonic()
        lines = request.body if isinstance(request.body, list) else [request.body] if request.body else []
        if not lines:
            raise EsError(400, "action_request_validation_exception", "Validation Failed: 1: no requests added;")
        ops = parse_bulk(lines, request.path_params.get("index"), request.query.get("pipeline"))
        refresh = request.query.get("refresh") in ("", "true", "wait_for")
        items = self.store.execute(ops, refresh=refresh)
        body = {
            "errors": any("error" in item for item in items),
            "took": int((time.monotonic() - started) * 1000),
            "items": [{op.action: item} for op, item in zip(ops, items, strict=True)],
        }
        return SimResponse(200, body)
