"""Indices and documents of the single-shard in-memory store, and the errors Elasticsearch answers about them."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from typing import Any

from airflow_esml.testing.protocol import EsError

SHARDS = {"total": 2, "successful": 1, "failed": 0}
_INVALID_CHARS = set('\\/*?"<>| ,#:')


@dataclass
class Doc:
    """One stored document.

    :param source: the ``_source``.
    :param version: ``_version``.
    :param seq_no: ``_seq_no``.
    :param inference_fields: the ``_inference_fields`` metadata of ``semantic_text`` fields (8.18+ format).
    """

    source: dict[str, Any]
    version: int
    seq_no: int
    inference_fields: dict[str, Any] | None = None


@dataclass
class Index:
    """One index: its documents, sequence numbers, mappings and settings."""

    name: str
    uuid: str = field(default_factory=lambda: base64.urlsafe_b64encode(os.urandom(16)).decode()[:22])
    docs: dict[str, Doc] = field(default_factory=dict)
    deleted_versions: dict[str, int] = field(default_factory=dict)
    next_seq_no: int = 0
    primary_term: int = 1
    mappings: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def take_seq_no(self) -> int:
        self.next_seq_no += 1
        return self.next_seq_no - 1

    @property
    def number_of_shards(self) -> int:
        return int(self.settings.get("number_of_shards", 1))

    @property
    def default_pipeline(self) -> str | None:
        value = self.settings.get("default_pipeline")
        return None if value in (None, "_none") else str(value)

    def semantic_fields(self) -> dict[str, str]:
        """``semantic_text`` fields of the mapping (top-level properties): field -> ``inference_id``."""
        props = self.mappings.get("properties", {})
        return {
            name: str(spec.get("inference_id", DEFAULT_SEMANTIC_ENDPOINT))
            for name, spec in props.items()
            if isinstance(spec, dict) and spec.get("type") == "semantic_text"
        }


DEFAULT_SEMANTIC_ENDPOINT = ".elser-2-elasticsearch"


def index_not_found(name: str) -> EsError:
    return EsError(
        404,
        "index_not_found_exception",
        f"no such index [{name}]",
        extra={"resource.type": "index_or_alias", "resource.id": name, "index_uuid": "_na_", "index": name},
    )


def conflict(index: Index, doc_id: str, reason: str) -> EsError:
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


@dataclass
class WriteOp:
    """One write of a ``_bulk`` request, a by-query job or a single-document API.

    :param action: ``index``, ``create``, ``update`` or ``delete``.
    :param index: the target index.
    :param id: the document id (``None``: generated).
    :param source: the document to index (after ingest: the ingested document).
    :param pipeline: the request's ``pipeline`` (``None``: the index's ``default_pipeline``; ``_none``: none).
    :param cas: ``(if_seq_no, if_primary_term)``.
    :param update: the body of an ``update`` action (``doc``, ``doc_as_upsert``, ``upsert``).
    :param inference_fields: ``semantic_text`` results for the 8.18+ format (set by ingest).
    :param error: a failure set by ingest; the write is then skipped and the item fails.
    :param label: the ``op`` of its ``document_written`` audit event (the HTTP method of a single-document
        request, else the action).
    """

    action: str
    index: str
    id: str | None
    source: dict[str, Any] | None = None
    pipeline: str | None = None
    cas: tuple[int, int] | None = None
    update: dict[str, Any] | None = None
    inference_fields: dict[str, Any] | None = None
    error: EsError | None = None
    label: str | None = None
