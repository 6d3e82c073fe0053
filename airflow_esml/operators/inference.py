"""BatchInferenceOperator: infer a batch of documents with every started allocation busy."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_esml.core.endpoint_results import check_query, endpoint_inputs
from airflow_esml.core.params import (
    DEFAULT_CONN_ID,
    DEFAULT_DEPLOY_TIMEOUT,
    check_id,
    check_return_results,
    optional_positive_int,
    parse_list_text,
    seconds,
)
from airflow_esml.exceptions import InvalidParameterError
from airflow_esml.links import TrainedModelsLink
from airflow_esml.operators.base import ElasticsearchMLTaskMixin

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_esml.core.batch import BatchResult
    from airflow_esml.core.target import Target

#: ``return_results="auto"`` puts the results into the XCom only up to this many documents.
SMALL_BATCH = 100


class BatchInferenceOperator(ElasticsearchMLTaskMixin, BaseOperator):
    """Send a batch of documents through a deployment's ``_infer`` API, or an inference endpoint's
    ``POST _inference/<task_type>/<id>``, as fast as the deployment's allocations allow.

    Reads the deployment's started allocations and threads per allocation, keeps enough requests in
    flight to use all of them, backs off on 429 (inference queue full) instead of failing, and keeps the
    results in document order (see :mod:`airflow_esml.hooks.inference`). The XCom result is a small
    summary: ``{"docs", "seconds", "docs_per_second", "allocations", ...}``; the results themselves go to
    ``output_path`` (JSON Lines, one result per line, in order) or, for small batches, into the summary. The
    summary also says what was inferred through: ``managed_by``, ``inference_id`` and ``task_type`` (see
    :class:`~airflow_esml.core.target.Target`).

    Given an inference id, the documents' ``field_name`` texts go to the endpoint, and each result is the
    endpoint's answer for its text: ``{"embedding": {...}, "is_truncated": ...}`` (sparse_embedding),
    ``{"embedding": [...]}`` (text_embedding) or ``{"relevance_score": ...}`` (rerank, with ``query``). A default
    endpoint with no deployment yet is deployed first, by one inference call.

    :param deployment_id: the deployment, or inference endpoint, to infer with. (templated)
    :param docs: the documents: a list of dicts as ``_infer`` takes them (``[{"text_field": "..."}]``) or of
        strings (put into ``field_name``); a JSON string of such a list (e.g. rendered from an XCom); or a
        callable returning the list, which Airflow's templating calls with ``(context, jinja_env)``. (templated)
    :param elasticsearch_conn_id: the Airflow connection to the cluster. (templated)
    :param field_name: the model's input field, for documents given as strings; for an inference endpoint, the
        field whose text is sent. (templated)
    :param query: the query of a ``rerank`` inference endpoint, which scores every document against it. (templated)
    :param output_path: write the results to this file as JSON Lines. (templated)
    :param return_results: put the results into the XCom summary under ``results``: ``True``, ``False``,
        or ``"auto"`` (default: only when there are at most 100 documents and no ``output_path``).
    :param chunk_size: documents per request; default sized from the batch and the allocations.
    :param in_flight: requests in flight; default two per started allocation x thread.
    :param request_timeout: Elasticsearch's ``timeout`` of each ``_infer`` request, e.g. ``"60s"``.
    :param max_queue_wait: seconds a request keeps backing off on 429 before the task fails.

    With a ``kibana_url`` extra on the connection, the task shows a "Kibana trained models" link.
    """

    template_fields: Sequence[str] = (
        "deployment_id",
        "docs",
        "elasticsearch_conn_id",
        "field_name",
        "output_path",
        "query",
    )
    template_fields_renderers = {"docs": "json"}
    ui_color = "#c5e8f7"
    operator_extra_links = (TrainedModelsLink(),)

    def __init__(
        self,
        *,
        deployment_id: str,
        docs: list[Any] | str | Callable[..., Sequence[Any]],
        elasticsearch_conn_id: str = DEFAULT_CONN_ID,
        field_name: str = "text_field",
        output_path: str | None = None,
        return_results: bool | str = "auto",
        chunk_size: int | None = None,
        in_flight: int | None = None,
        request_timeout: str = "60s",
        max_queue_wait: float = 600.0,
        query: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deployment_id = deployment_id
        self.docs = docs
        self.elasticsearch_conn_id = elasticsearch_conn_id
        self.field_name = field_name
        self.output_path = output_path
        self.return_results = check_return_results(return_results)
        self.chunk_size = optional_positive_int("chunk_size", chunk_size)
        self.in_flight = optional_positive_int("in_flight", in_flight)
        self.request_timeout = request_timeout
        self.max_queue_wait = seconds("max_queue_wait", max_queue_wait, zero_ok=True)
        self.query = query

    def resolve_docs(self, context: Context | None = None) -> list[Any]:
        """The documents after templating: a list, a JSON list, or what the callable returns."""
        docs: Any = self.docs
        if callable(docs):
            docs = docs(context) if context is not None else docs()
        if isinstance(docs, str):
            docs = parse_list_text(docs)
        if not isinstance(docs, (list, tuple)):
            raise InvalidParameterError(f"docs must be a list of documents, got {type(docs).__name__}")
        return list(docs)

    def execute(self, context: Context) -> dict[str, Any]:
        check_id("deployment_id", self.deployment_id)
        self.persist_kibana_link(context, self.deployment_id)
        docs = self.resolve_docs(context)
        if not docs:
            self.log.info("No documents to infer")
            return {"docs": 0, "seconds": 0.0, "docs_per_second": 0.0, "allocations": None}
        self._check_endpoint_inputs(docs)  # bad input fails before a default endpoint is deployed
        target = self.scaled_target(self.deployment_id, deploy_within=DEFAULT_DEPLOY_TIMEOUT)
        result = self._infer(docs, target)
        return {**self.summarize(result), **target.to_xcom()}  # batch_infer logged the totals

    def _check_endpoint_inputs(self, docs: list[Any]) -> None:
        """For an inference endpoint: refuse a rerank without ``query``, or a document without a text to send."""
        from airflow_esml.core.batch import normalize_docs

        target = self.scaled_target(self.deployment_id)
        if target.is_endpoint:
            assert target.endpoint_task_type is not None
            check_query(target.endpoint_task_type, self.query)
            endpoint_inputs(normalize_docs(docs, self.field_name), self.field_name)

    def _infer(self, docs: list[Any], target: Target) -> BatchResult:
        """Send ``docs`` through ``target`` with every started allocation busy."""
        from airflow_esml.hooks.inference import batch_infer  # loads the elasticsearch client

        return batch_infer(
            self.hook,
            self.deployment_id,
            docs,
            target=target,
            query=self.query,
            field_name=self.field_name,
            chunk_size=self.chunk_size,
            in_flight=self.in_flight,
            timeout=self.request_timeout,
            max_queue_wait=self.max_queue_wait,
        )

    def summarize(self, result: BatchResult) -> dict[str, Any]:
        """The XCom value: the summary, plus the output path or (small batches) the results."""
        summary = result.summary()
        kept = []
        if self.output_path:
            write_jsonl(self.output_path, result.results)
            summary["output_path"] = self.output_path
            kept.append(f"written to {self.output_path} (JSON Lines, one per document, in order)")
        keep = self.return_results
        if keep is True or (keep == "auto" and not self.output_path and result.docs <= SMALL_BATCH):
            summary["results"] = result.results
            kept.append("in the XCom under 'results'")
        if kept:
            self.log.info("Results of %d document(s): %s", result.docs, "; ".join(kept))
        else:
            why = "return_results=False" if keep is False else f"more than {SMALL_BATCH} documents"
            self.log.info(
                "Results of %d document(s) not kept: no output_path, and %s keeps them out of the XCom "
                "(set output_path to keep them)",
                result.docs,
                why,
            )
        return summary


def write_jsonl(path: str, results: Sequence[Any]) -> None:
    """Write one JSON result per line, atomically (a partial file never replaces a complete one)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as handle:
        for item in results:
            handle.write(json.dumps(item, separators=(",", ":")) + "\n")
    os.replace(partial, path)
