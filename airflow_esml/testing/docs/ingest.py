"""The ingest step of every write: the request's (or the index's default) pipeline, then ``semantic_text``.

:class:`IngestService` is the :data:`~airflow_esml.testing.api.documents.Ingestor` of the document store: it
changes the index/create operations of a batch in place (their ``source``, ``inference_fields`` or ``error``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from airflow_esml.testing.cluster.inference_ops import InferenceOps
from airflow_esml.testing.cluster.ingest_inference import infer_each, input_field
from airflow_esml.testing.docs.model import Index, WriteOp
from airflow_esml.testing.docs.pipelines import PipelineStore
from airflow_esml.testing.docs.processors import IngestDoc
from airflow_esml.testing.docs.semantic import EndpointLookup, EndpointRef, SemanticText


class IngestService:
    """Pipelines and ``semantic_text`` for a batch of writes.

    :param pipelines: the pipeline store.
    :param semantic: the ``semantic_text`` filler.
    :param index_info: index name -> its mappings and settings (``None`` when it does not exist yet).
    """

    def __init__(
        self, *, pipelines: PipelineStore, semantic: SemanticText, index_info: Callable[[str], Index | None]
    ) -> None:
        self.pipelines, self.semantic, self.index_info = pipelines, semantic, index_info

    @classmethod
    def for_cluster(
        cls,
        cluster: InferenceOps,
        index_info: Callable[[str], Index | None],
        lookup: EndpointLookup | None = None,
    ) -> IngestService:
        """Pipelines and ``semantic_text`` that infer on ``cluster``'s deployments.

        :param lookup: inference endpoint id -> its deployment; by default an endpoint id is looked up as a
            deployment id (an ``elasticsearch``-service endpoint's deployment has the endpoint's id).
        """
        infer = partial(infer_each, cluster)
        pipelines = PipelineStore(infer=infer, input_field=partial(input_field, cluster))
        semantic = SemanticText(
            version=cluster.version, lookup=lookup or partial(deployment_endpoint, cluster), infer=infer
        )
        return cls(pipelines=pipelines, semantic=semantic, index_info=index_info)

    def __call__(self, ops: list[WriteOp]) -> None:
        indices = {name: self.index_info(name) for name in {op.index for op in ops}}
        groups: dict[str, list[WriteOp]] = {}
        for op in ops:
            index = indices[op.index]
            pipeline = op.pipeline if op.pipeline is not None else (index.default_pipeline if index else None)
            if pipeline not in (None, "_none"):
                groups.setdefault(str(pipeline), []).append(op)
        for pipeline_id, members in groups.items():
            docs = [IngestDoc(dict(op.source or {})) for op in members]
            self.pipelines.run(pipeline_id, docs)
            for op, doc in zip(members, docs, strict=True):
                op.source, op.error = doc.source, doc.error
        for name, index in indices.items():
            fields = index.semantic_fields() if index else {}
            members = [op for op in ops if op.index == name and op.error is None]
            if not fields or not members:
                continue
            pairs: list[tuple[dict[str, Any], dict[str, Any]]] = [(op.source or {}, {}) for op in members]
            for op, (source, inference), error in zip(members, pairs, self.semantic.fill(fields, pairs), strict=True):
                op.source, op.error = source, error
                op.inference_fields = inference or None


def deployment_endpoint(cluster: InferenceOps, inference_id: str) -> EndpointRef | None:
    """An endpoint id served by the deployment of the same id, or ``None``."""
    with cluster.lock:
        return EndpointRef(inference_id, inference_id) if inference_id in cluster.deployments else None
