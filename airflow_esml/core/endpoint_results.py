"""What ``POST _inference/<task_type>/<id>`` answers, as one result per input text.

The inference API answers with one list named after the task type (the ``InferenceServiceResults`` of
elastic/elasticsearch's ``x-pack/plugin/inference``):

- ``sparse_embedding``: ``{"sparse_embedding": [{"is_truncated": false, "embedding": {"token": weight}}]}``;
- ``text_embedding``: ``{"text_embedding": [{"embedding": [0.1, ...]}]}`` (``text_embedding_bytes`` or
  ``text_embedding_bits`` for quantized embeddings);
- ``rerank``: ``{"rerank": [{"index": 2, "relevance_score": 0.9, "text": "..."}]}``, sorted by score; each entry
  goes back to its input's place (an input left out, by ``top_n``, gets None).

Pure Python: no Airflow or Elasticsearch imports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_esml.core.params import cut, shown
from airflow_esml.exceptions import ElasticsearchRequestError, InvalidParameterError

#: the task types of the in-cluster (``elasticsearch``) service, which :func:`endpoint_results` reads
TASK_TYPES = ("sparse_embedding", "text_embedding", "rerank")
_EMBEDDING_KEYS = ("text_embedding", "text_embedding_bytes", "text_embedding_bits")


def endpoint_results(task_type: str, body: Mapping[str, Any], inputs: int) -> list[Any]:
    """One result per input, in the inputs' order.

    :param task_type: the endpoint's task type.
    :param body: the inference API's answer.
    :param inputs: how many input texts were sent.
    :raises ElasticsearchRequestError: the answer has no list for the task type, or not one entry per input.
    """
    if task_type == "rerank":
        return _reranked(body, inputs)
    keys = _EMBEDDING_KEYS if task_type == "text_embedding" else (task_type,)
    entries = next((body[k] for k in keys if isinstance(body.get(k), list)), None)
    if entries is None:
        raise ElasticsearchRequestError(f"the answer has no {task_type!r} results (keys: {sorted(body)})")
    if len(entries) != inputs:
        raise ElasticsearchRequestError(f"{len(entries)} results for {inputs} inputs")
    return list(entries)


def _reranked(body: Mapping[str, Any], inputs: int) -> list[Any]:
    entries = body.get("rerank")
    if not isinstance(entries, list):
        raise ElasticsearchRequestError(f"the answer has no 'rerank' results (keys: {sorted(body)})")
    results: list[Any] = [None] * inputs
    for entry in entries:
        index = entry.get("index") if isinstance(entry, Mapping) else None
        if not isinstance(index, int) or not 0 <= index < inputs:
            raise ElasticsearchRequestError(f"a rerank result with index {index!r} for {inputs} inputs")
        results[index] = {k: v for k, v in entry.items() if k != "index"}
    return results


def endpoint_inputs(docs: Sequence[Mapping[str, Any]], field_name: str) -> list[str]:
    """The input texts of documents given as ``{field_name: text}`` (the inference API takes texts only).

    :raises InvalidParameterError: a document has no text in ``field_name``.
    """
    texts = []
    for i, doc in enumerate(docs):
        text = doc.get(field_name)
        if not isinstance(text, str):
            raise InvalidParameterError(
                f"document {i} has no text in field_name={cut(field_name)!r} (got {shown(doc)}): an inference "
                "endpoint takes one text per document"
            )
        texts.append(text)
    return texts


def check_query(task_type: str, query: str | None) -> str | None:
    """``query``, required by a ``rerank`` endpoint (and not used by the others).

    :raises InvalidParameterError: a rerank endpoint without a query.
    """
    if task_type == "rerank" and (not isinstance(query, str) or not query.strip()):
        raise InvalidParameterError(f"query must be a non-empty string for a rerank endpoint, got {shown(query)}")
    return query if task_type == "rerank" else None
