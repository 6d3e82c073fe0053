"""``semantic_text`` fields: chunk the text, infer every chunk through the field's inference endpoint, and store
the chunked embeddings.

As ``ShardBulkInferenceActionFilter`` and ``SemanticTextFieldMapper`` in elastic/elasticsearch
(x-pack/plugin/inference/). Two storage formats, by version:

- before 8.18 (the legacy format), ``_source`` holds ``{"text": ..., "inference": {"inference_id",
  "model_settings", "chunks": [{"text", "embeddings"}]}}`` in place of the text;
- from 8.18 on, ``_source`` keeps the text and the chunks go to the ``_inference_fields`` metadata
  (``chunks: {field: [{"start_offset", "end_offset", "embeddings"}]}``), returned only when asked for.

Every chunk is one inference request on the endpoint's deployment (``cluster/ingest_inference.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_esml.testing.cluster.inference import EMBEDDING_DIMS
from airflow_esml.testing.docs.processors import InferFn
from airflow_esml.testing.protocol import EsError, EsVersion

CHUNK_WORDS = 250


@dataclass(frozen=True)
class EndpointRef:
    """What ``semantic_text`` needs of an inference endpoint.

    :param inference_id: the endpoint id.
    :param deployment_id: the trained-model deployment that serves it.
    :param task_type: ``text_embedding`` or ``sparse_embedding``.
    :param dimensions: embedding dimensions (``text_embedding``).
    """

    inference_id: str
    deployment_id: str
    task_type: str = "text_embedding"
    dimensions: int = EMBEDDING_DIMS


EndpointLookup = Callable[[str], EndpointRef | None]


def chunks(text: str, words: int = CHUNK_WORDS) -> list[tuple[int, int]]:
    """``(start_offset, end_offset)`` of chunks of at most ``words`` words (no overlap)."""
    spans, start, count, position = [], None, 0, 0
    for token in text.split():
        begin = text.index(token, position)
        position = begin + len(token)
        if start is None:
            start = begin
        count += 1
        if count == words:
            spans.append((start, position))
            start, count = None, 0
    if start is not None:
        spans.append((start, position))
    return spans or [(0, len(text))]


def model_settings(endpoint: EndpointRef) -> dict[str, Any]:
    if endpoint.task_type == "sparse_embedding":
        return {"task_type": "sparse_embedding"}
    return {
        "task_type": "text_embedding",
        "dimensions": endpoint.dimensions,
        "similarity": "cosine",
        "element_type": "float",
    }


def embedding(endpoint: EndpointRef, result: dict[str, Any]) -> Any:
    vector = result["predicted_value"]
    if endpoint.task_type == "sparse_embedding":
        return {f"t{i}": round(abs(v), 6) for i, v in enumerate(vector) if v}
    return vector


class SemanticText:
    """Fills the ``semantic_text`` fields of documents before they are written.

    :param version: the simulated version (storage format).
    :param lookup: inference endpoint id -> :class:`EndpointRef` (``None`` when unknown).
    :param infer: per-text inference on a deployment.
    """

    def __init__(self, *, version: EsVersion, lookup: EndpointLookup, infer: InferFn) -> None:
        self.legacy = not version.at_least("8.18")
        self.lookup, self.infer = lookup, infer

    def fill(self, fields: dict[str, str], docs: list[tuple[dict[str, Any], dict[str, Any]]]) -> list[EsError | None]:
        """Infer the ``fields`` (name -> inference id) of ``docs`` (``(source, inference_fields)`` pairs, changed
        in place); one outcome per document."""
        outcomes: list[EsError | None] = [None] * len(docs)
        for name, inference_id in fields.items():
            endpoint = self.lookup(inference_id)
            wanted = [(i, d) for i, d in enumerate(docs) if isinstance(d[0].get(name), str)]
            if not wanted:
                continue
            if endpoint is None:
                error = EsError(
                    404, "resource_not_found_exception", f"Inference id [{inference_id}] not found for field [{name}]"
                )
                for i, _ in wanted:
                    outcomes[i] = outcomes[i] or error
                continue
            self._fill_field(name, endpoint, wanted, outcomes)
        return outcomes

    def _fill_field(
        self,
        name: str,
        endpoint: EndpointRef,
        wanted: list[tuple[int, tuple[dict[str, Any], dict[str, Any]]]],
        outcomes: list[EsError | None],
    ) -> None:
        requests = [(i, text, span) for i, (source, _) in wanted for text in [source[name]] for span in chunks(text)]
        try:
            results = self.infer(endpoint.deployment_id, [text[a:b] for _, text, (a, b) in requests])
        except EsError as err:
            for i, _ in wanted:
                outcomes[i] = outcomes[i] or err
            return
        per_doc: dict[int, list[dict[str, Any]]] = {}
        for (i, text, (a, b)), result in zip(requests, results, strict=True):
            if isinstance(result, EsError):
                outcomes[i] = outcomes[i] or result
                continue
            chunk = {"text": text[a:b]} if self.legacy else {"start_offset": a, "end_offset": b}
            chunk["embeddings"] = embedding(endpoint, result)
            per_doc.setdefault(i, []).append(chunk)
        for i, (source, inference_fields) in wanted:
            if outcomes[i] is not None:
                continue
            inference = {"inference_id": endpoint.inference_id, "model_settings": model_settings(endpoint)}
            if self.legacy:
                source[name] = {"text": source[name], "inference": {**inference, "chunks": per_doc[i]}}
            else:
                inference_fields[name] = {"inference": {**inference, "chunks": {name: per_doc[i]}}}
