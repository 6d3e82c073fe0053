"""Ingest pipelines: their definitions, and running a batch of documents through one.

As ``IngestService``, ``Pipeline`` and ``CompoundProcessor`` in elastic/elasticsearch
(server/src/main/java/org/elasticsearch/ingest/): the processors run in order; a failing processor is skipped
with ``ignore_failure``, handled by its own ``on_failure`` (the pipeline then goes on), or else by the pipeline's
``on_failure`` (the pipeline then stops and the document is indexed as the handlers left it); with no handler
the document fails. Handlers see ``_ingest.on_failure_message``, ``on_failure_processor_type``,
``on_failure_processor_tag`` and ``on_failure_pipeline``. A batch moves through the processors together, so an
``inference`` processor sends the requests of all its documents at once, as concurrent ingest does.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from typing import Any

from airflow_esml.testing.docs.processors import (
    COMMON,
    InferenceProcessor,
    InferFn,
    IngestDoc,
    InputFieldFn,
    Processor,
    RemoveProcessor,
    SetProcessor,
    config_error,
)
from airflow_esml.testing.protocol import EsError

_TYPES: dict[str, type[Processor]] = {"set": SetProcessor, "remove": RemoveProcessor, "inference": InferenceProcessor}


@dataclass
class Pipeline:
    """A parsed pipeline."""

    pipeline_id: str
    body: dict[str, Any]
    processors: list[Processor]
    on_failure: list[Processor]


def missing_pipeline(pipeline_id: str) -> EsError:
    return EsError(400, "illegal_argument_exception", f"pipeline with id [{pipeline_id}] does not exist")


class PipelineStore:
    """The cluster's pipelines (``PUT/GET/DELETE _ingest/pipeline/<id>``) and their execution.

    :param infer: runs inference for the ``inference`` processor (see ``cluster/ingest_inference.py``).
    :param input_field: a model's input field.
    """

    def __init__(self, *, infer: InferFn, input_field: InputFieldFn) -> None:
        self._infer, self._input_field = infer, input_field
        self._lock = threading.Lock()
        self._pipelines: dict[str, Pipeline] = {}

    # -- definitions -----------------------------------------------------------------------------

    def put(self, pipeline_id: str, body: dict[str, Any]) -> None:
        """Parse and store a pipeline; 400 ``parse_exception`` for a bad definition (nothing stored)."""
        processors = body.get("processors")
        if processors is None:
            raise EsError(400, "parse_exception", "[processors] required property is missing")
        if not isinstance(processors, list):
            raise EsError(400, "parse_exception", "[processors] property isn't a list, but of type [object]")
        pipeline = Pipeline(
            pipeline_id, copy.deepcopy(body), self._parse(processors), self._parse(body.get("on_failure") or [])
        )
        with self._lock:
            self._pipelines[pipeline_id] = pipeline

    def _parse(self, configs: list[Any]) -> list[Processor]:
        parsed: list[Processor] = []
        for entry in configs:
            if not isinstance(entry, dict) or len(entry) != 1:
                raise EsError(400, "parse_exception", "processor must be an object with a single processor type")
            ((kind, config),) = entry.items()
            cls = _TYPES.get(kind)
            if cls is None:
                raise config_error(kind, None, f"No processor type exists with name [{kind}]")
            config = dict(config or {})
            common: dict[str, Any] = {
                "tag": config.get("tag"),
                "ignore_failure": bool(config.get("ignore_failure", False)),
                "on_failure": self._parse(config.get("on_failure") or []),
            }
            own = {k: v for k, v in config.items() if k not in COMMON}
            if cls is InferenceProcessor:
                parsed.append(InferenceProcessor(own, infer=self._infer, input_field=self._input_field, **common))
            else:
                parsed.append(cls(own, **common))
        return parsed

    def get(self, ids: list[str] | None = None) -> dict[str, Any]:
        """The definitions of ``ids`` (all when ``None``); only those that exist."""
        with self._lock:
            chosen = self._pipelines if ids is None else {i: self._pipelines[i] for i in ids if i in self._pipelines}
            return {i: copy.deepcopy(p.body) for i, p in sorted(chosen.items())}

    def delete(self, pipeline_id: str) -> bool:
        with self._lock:
            return self._pipelines.pop(pipeline_id, None) is not None

    def referenced_models(self) -> dict[str, int]:
        """Model/deployment id -> the number of pipelines whose inference processors use it."""
        with self._lock:
            pipelines = list(self._pipelines.values())
        counts: dict[str, int] = {}
        for pipeline in pipelines:
            ids = {
                p.model_id
                for p in _walk(pipeline.processors + pipeline.on_failure)
                if isinstance(p, InferenceProcessor)
            }
            for model_id in ids:
                counts[model_id] = counts.get(model_id, 0) + 1
        return counts

    # -- execution -------------------------------------------------------------------------------

    def run(self, pipeline_id: str, docs: list[IngestDoc]) -> None:
        """Run ``docs`` through a pipeline; failures end in ``doc.error``."""
        with self._lock:
            pipeline = self._pipelines.get(pipeline_id)
        if pipeline is None:
            for doc in docs:
                doc.error = missing_pipeline(pipeline_id)
            return
        for doc in docs:
            doc.meta.setdefault("pipeline", pipeline_id)
        stopped: set[int] = set()
        for processor in pipeline.processors:
            alive = [d for d in docs if d.error is None and id(d) not in stopped]
            if not alive:
                break
            for doc, error in zip(alive, processor.apply(alive), strict=True):
                if error is None or processor.ignore_failure:
                    continue
                if processor.on_failure:
                    self._handle(processor.on_failure, processor, pipeline_id, doc, error)
                elif pipeline.on_failure:
                    self._handle(pipeline.on_failure, processor, pipeline_id, doc, error)
                    stopped.add(id(doc))
                else:
                    doc.error = error

    def _handle(
        self, handlers: list[Processor], failed: Processor, pipeline_id: str, doc: IngestDoc, error: EsError
    ) -> None:
        saved = dict(doc.meta)
        doc.meta.update(
            on_failure_message=error.reason,
            on_failure_processor_type=failed.kind,
            on_failure_processor_tag=failed.tag,
            on_failure_pipeline=pipeline_id,
        )
        for handler in handlers:
            (outcome,) = handler.apply([doc])
            if outcome is not None and not handler.ignore_failure:
                doc.error = outcome
                break
        doc.meta = saved


def _walk(processors: list[Processor]) -> list[Processor]:
    out: list[Processor] = []
    for p in processors:
        out += [p, *_walk(p.on_failure)]
    return out
