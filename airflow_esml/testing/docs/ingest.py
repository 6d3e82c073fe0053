"""The ingest step of every write: the request's (or the index's default) pipeline, then ``semantic_text``.

:class:`IngestService` is the :data:`~airflow_esml.testing.docs.store.Ingestor` of the document store: it
changes the index/create operations of a batch in place (their ``source``, ``inference_fields`` or ``error``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import partial
from typing import Any

from airflow_esml.testing.cluster import Cluster
from airflow_esml.testing.cluster.endpoint_ops import EndpointService
from airflow_esml.testing.cluster.ingest_inference import infer_each, input_field
from airflow_esml.testing.docs.model import Index, WriteOp
from airflow_esml.testing.docs.pipelines import PipelineStore
from airflow_esml.testing.docs.processors import IngestDoc
from airflow_esml.testing.docs.semantic import EndpointLookup, EndpointRef, SemanticText

# How long the first write into a default endpoint's semantic_text field waits for its deployment to start.
LAZY_DEPLOY_SECONDS = 30.0


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
        cluster: Cluster,
        index_info: Callable[[str], Index | None],
        lookup: EndpointLookup | None = None,
    ) -> IngestService:
        """Pipelines and ``semantic_text`` that infer on ``cluster``'s deployments.

        :param lookup: inference endpoint id -> its deployment; by default the cluster's inference endpoints.
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
            docs = [IngestDoc(copy.deepcopy(op.source or {})) for op in members]
            self.pipelines.run(pipeline_id, docs)
            for op, doc in zip(members, docs, strict=True):
                op.source, op.error = doc.source, doc.error
        for name, index in indices.items():
            fields = index.semantic_fields() if index else {}
            members = [op for op in ops if op.index == name and op.error is None]
            if not fields or not members:
                continue
            pairs: list[tuple[dict[str, Any], dict[str, Any]]] = [(dict(op.source or {}), {}) for op in members]
            for op, (source, inference), error in zip(members, pairs, self.semantic.fill(fields, pairs), strict=True):
                op.source, op.error = source, error
                op.inference_fields = inference or None


def deployment_endpoint(cluster: Cluster, inference_id: str) -> EndpointRef | None:
    """The inference endpoint ``inference_id`` and its deployment, or ``None`` when there is no such endpoint.

    A default endpoint without a deployment yet gets it started first, as its first inference call would
    (``EndpointService``'s lazy deployment).
    """
    service = EndpointService(cluster)
    with cluster.lock:
        endpoint = cluster.inference_endpoints.get(inference_id)
        if endpoint is None or endpoint.task_type not in ("text_embedding", "sparse_embedding"):
            return None
        lazy = endpoint.default and endpoint.ml_deployment_id not in cluster.deployments
        if lazy:
            service.ensure_model(endpoint.model_id)
    if lazy:
        service._deploy_default(endpoint, LAZY_DEPLOY_SECONDS)
    return EndpointRef(inference_id, endpoint.ml_deployment_id, endpoint.task_type)
