"""``POST _reindex`` and ``POST <index>/_update_by_query``: request parsing and the synchronous/task answers.

As ``RestReindexAction``, ``RestUpdateByQueryAction`` and ``AbstractBaseReindexRestHandler`` in
elastic/elasticsearch (modules/reindex/): ``wait_for_completion=false`` validates the request, starts the task
and answers ``{"task": "node:id"}``; otherwise the request waits and answers the ``BulkByScrollResponse`` with
the highest status among its failures (200 without failures).
"""

from __future__ import annotations

import math
from typing import Any

from airflow_esml.testing.api.request_values import query_bool, query_int
from airflow_esml.testing.docs.byquery import DEFAULT_BATCH_SIZE, Job, JobSpec, Store
from airflow_esml.testing.docs.model import Index
from airflow_esml.testing.docs.tasks import TaskManager
from airflow_esml.testing.protocol import EsError, Route, SimRequest, SimResponse

MAX_RESULT_WINDOW = 10000
SYNC_WAIT_SECONDS = 3600.0


def _validation(*errors: str) -> EsError:
    numbered = "".join(f"{i}: {e};" for i, e in enumerate(errors, 1))
    return EsError(400, "action_request_validation_exception", f"Validation Failed: {numbered}")


def parse_slices(raw: str | None, source: Index) -> int:
    """``slices``: a positive number or ``auto`` (one slice per shard of the source index)."""
    if raw is None:
        return 1
    if raw == "auto":
        return source.number_of_shards
    try:
        slices = int(raw)
    except ValueError:
        raise EsError(
            400,
            "illegal_argument_exception",
            f'[slices] must be a positive integer or the string "auto", but was [{raw}]',
        ) from None
    if slices < 1:
        raise EsError(400, "illegal_argument_exception", f"[slices] must be at least 1, was [{slices}]")
    return slices


def parse_rps(raw: str | None) -> float:
    """``requests_per_second``: ``-1`` (or absent) for no throttle, else a float above 0."""
    if raw is None or raw == "-1":
        return math.inf
    message = f"[requests_per_second] must be a float greater than 0. Use -1 to disable throttling. Found [{raw}]"
    try:
        value = float(raw)
    except ValueError:
        raise EsError(400, "illegal_argument_exception", message) from None
    if value == -1:
        return math.inf
    if not value > 0:
        raise EsError(400, "illegal_argument_exception", message)
    return value


def parse_conflicts(raw: Any) -> bool:
    """``conflicts``: ``True`` for ``proceed``."""
    if raw in (None, "abort"):
        return False
    if raw == "proceed":
        return True
    raise EsError(400, "illegal_argument_exception", f'conflicts may only be "proceed" or "abort" but was [{raw}]')


def check_batch_size(size: int) -> int:
    if size < 1:
        raise _validation(f"batch size must be greater than 0, got [{size}]")
    if size > MAX_RESULT_WINDOW:
        raise EsError(
            400,
            "illegal_argument_exception",
            f"Batch size is too large, size must be less than or equal to: [{MAX_RESULT_WINDOW}] but was [{size}]. "
            "Scroll batch sizes cost as much memory as result windows so they are controlled by the "
            "[index.max_result_window] index level setting.",
        )
    return size


class ByQueryApi:
    """The ``_reindex`` and ``_update_by_query`` handlers.

    :param store: the document store (``find_index``, ``snapshot``, ``execute``).
    :param tasks: the task manager.
    """

    endpoint_names: dict[tuple[str, str], str] = {
        ("POST", "/_reindex"): "reindex",
        ("POST", "/{index}/_update_by_query"): "update_by_query",
    }

    def __init__(self, store: Any, tasks: TaskManager) -> None:
        self.store: Store = store
        self._indices = store
        self.tasks = tasks

    def routes(self) -> list[Route]:
        handlers = {"reindex": self._reindex, "update_by_query": self._update_by_query}
        return [(m, t, handlers[name]) for (m, t), name in self.endpoint_names.items()]

    def _source_index(self, name: str) -> Index:
        index = self._indices.find_index(name)
        if index is None:
            raise EsError(
                404,
                "index_not_found_exception",
                f"no such index [{name}]",
                extra={"resource.type": "index_or_alias", "resource.id": name, "index_uuid": "_na_", "index": name},
            )
        return index

    def _max_docs(self, value: Any) -> int | None:
        if value is None:
            return None
        max_docs = int(value)
        if max_docs < 0:
            raise _validation(f"[max_docs] parameter cannot be negative, found [{max_docs}]")
        return max_docs

    # -- reindex ---------------------------------------------------------------------------------

    def _reindex(self, request: SimRequest) -> SimResponse:
        body = request.body if isinstance(request.body, dict) else None
        if body is None:
            raise EsError(400, "parse_exception", "request body is required")
        for key in body:
            if key not in ("source", "dest", "max_docs", "conflicts"):
                raise EsError(400, "x_content_parse_exception", f"[1:2] [reindex] unknown field [{key}]")
        source, dest = body.get("source") or {}, body.get("dest") or {}
        errors = []
        if not source.get("index"):
            errors.append("use _all if you really want to copy from all existing indexes")
        if not dest.get("index"):
            errors.append("index must be specified")
        if errors:
            raise _validation(*errors)
        src_name = source["index"] if isinstance(source["index"], str) else ",".join(source["index"])
        if src_name == dest["index"]:
            raise EsError(
                400, "illegal_argument_exception", f"reindex cannot write into an index its reading from [{src_name}]"
            )
        op_type = dest.get("op_type", "index")
        if op_type not in ("index", "create"):
            raise EsError(400, "illegal_argument_exception", f"opType must be 'create' or 'index', found: [{op_type}]")
        spec = JobSpec(
            kind="reindex",
            source=src_name,
            dest=dest["index"],
            query=source.get("query") or {"match_all": {}},
            pipeline=dest.get("pipeline"),
            op_type=op_type,
            batch_size=check_batch_size(int(source.get("size", DEFAULT_BATCH_SIZE))),
            max_docs=self._max_docs(body.get("max_docs", request.query.get("max_docs"))),
            requests_per_second=parse_rps(request.query.get("requests_per_second")),
            proceed_on_conflict=parse_conflicts(body.get("conflicts")),
            refresh=query_bool(request.query, "refresh", False),
        )
        return self._run(spec, request)

    # -- update by query -------------------------------------------------------------------------

    def _update_by_query(self, request: SimRequest) -> SimResponse:
        body = request.body if isinstance(request.body, dict) else {}
        name = request.path_params["index"]
        scroll_size = query_int(request.query, "scroll_size")
        spec = JobSpec(
            kind="update_by_query",
            source=name,
            dest=name,
            query=body.get("query") or {"match_all": {}},
            pipeline=request.query.get("pipeline"),
            batch_size=check_batch_size(DEFAULT_BATCH_SIZE if scroll_size is None else scroll_size),
            max_docs=self._max_docs(body.get("max_docs", request.query.get("max_docs"))),
            requests_per_second=parse_rps(request.query.get("requests_per_second")),
            proceed_on_conflict=parse_conflicts(body.get("conflicts", request.query.get("conflicts"))),
            refresh=query_bool(request.query, "refresh", False),
        )
        return self._run(spec, request)

    # -- both ------------------------------------------------------------------------------------

    def _run(self, spec: JobSpec, request: SimRequest) -> SimResponse:
        wait = query_bool(request.query, "wait_for_completion", True)
        source = self._indices.find_index(spec.source)
        spec.slices = parse_slices(request.query.get("slices"), source or Index(spec.source))
        if spec.max_docs is not None and spec.max_docs < spec.slices:
            raise _validation(f"[max_docs] should be >= [slices], found [{spec.max_docs}] and [{spec.slices}]")
        if wait and source is None:
            self._source_index(spec.source)
        job = Job(spec, self.store, self.tasks, store_result=not wait)
        job.start()
        if not wait:
            return SimResponse(200, {"task": job.task_id})
        if not job.task.done.wait(SYNC_WAIT_SECONDS) or job.task.result is None:
            raise EsError(503, "node_closed_exception", "node closed")
        result = job.task.result
        if "error" in result:
            error = result["error"]
            extra = {k: v for k, v in error.items() if k not in ("type", "reason")}
            raise EsError(
                404 if error["type"] == "index_not_found_exception" else 500,
                error["type"],
                error["reason"],
                extra=extra,
            )
        response = dict(result["response"])
        if spec.kind == "update_by_query":
            response.pop("created", None)
        status = max([200, *(f.get("status", 500) for f in response["failures"])])
        return SimResponse(status, response)
