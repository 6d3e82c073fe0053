"""Ingest processors: ``set``, ``remove`` and ``inference``, each applied to a batch of documents.

As the processors of elastic/elasticsearch (modules/ingest-common/ ``SetProcessor``, ``RemoveProcessor``;
x-pack/plugin/ml/ ``InferenceProcessor``). A processor returns one outcome per document: ``None`` when it
succeeded, else the :class:`EsError` the pipeline then handles (``ignore_failure``, ``on_failure``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_esml.testing.protocol import EsError

# text inputs -> per input, {"predicted_value": ...} or the error of that document
InferFn = Callable[[str, list[Any]], list[dict[str, Any] | EsError]]
# model id -> the model's input field (``text_field`` by default)
InputFieldFn = Callable[[str], str]

_TEMPLATE = re.compile(r"\{\{\{?\s*([^}\s]+)\s*\}?\}\}")
COMMON = {"tag", "description", "if", "ignore_failure", "on_failure"}


@dataclass
class IngestDoc:
    """A document going through a pipeline.

    :param source: the document (changed in place).
    :param meta: the ``_ingest`` metadata (``on_failure_message``, ``on_failure_processor_type``, ...).
    :param error: the failure that stops the document.
    """

    source: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    error: EsError | None = None


def config_error(kind: str, tag: str | None, reason: str) -> EsError:
    extra: dict[str, Any] = {"processor_type": kind}
    if tag:
        extra["processor_tag"] = tag
    return EsError(400, "parse_exception", reason, extra=extra)


def get_path(source: dict[str, Any], path: str) -> Any:
    value: Any = source
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def set_path(source: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    target = source
    for part in parts[:-1]:
        if not isinstance(target.get(part), dict):
            target[part] = {}
        target = target[part]
    target[parts[-1]] = value


def remove_path(source: dict[str, Any], path: str) -> bool:
    parts = path.split(".")
    target: Any = source
    for part in parts[:-1]:
        if not isinstance(target, dict) or part not in target:
            return False
        target = target[part]
    if not isinstance(target, dict) or parts[-1] not in target:
        return False
    del target[parts[-1]]
    return True


def render(value: Any, doc: IngestDoc) -> Any:
    """Mustache ``{{field}}`` / ``{{_ingest.x}}`` substitution in strings (recursively in lists and objects)."""
    if isinstance(value, str):

        def lookup(match: re.Match[str]) -> str:
            name = match.group(1)
            found = doc.meta.get(name[len("_ingest.") :]) if name.startswith("_ingest.") else get_path(doc.source, name)
            return "" if found is None else str(found)

        return _TEMPLATE.sub(lookup, value)
    if isinstance(value, list):
        return [render(v, doc) for v in value]
    if isinstance(value, dict):
        return {k: render(v, doc) for k, v in value.items()}
    return value


class Processor:
    """One configured processor.

    :param kind: the processor type.
    :param config: its configuration (common options removed).
    :param tag: ``tag``.
    :param ignore_failure: ``ignore_failure``.
    :param on_failure: the processors of its ``on_failure``.
    """

    kind = ""

    def __init__(self, config: dict[str, Any], *, tag: str | None, ignore_failure: bool, on_failure: list[Processor]):
        self.tag, self.ignore_failure, self.on_failure = tag, ignore_failure, on_failure
        self.config = config

    def required(self, name: str) -> Any:
        if name not in self.config:
            raise config_error(self.kind, self.tag, f"[{name}] required property is missing")
        return self.config[name]

    def apply(self, docs: list[IngestDoc]) -> list[EsError | None]:
        return [self.apply_one(doc) for doc in docs]

    def apply_one(self, doc: IngestDoc) -> EsError | None:  # pragma: no cover - every processor overrides one
        raise NotImplementedError


class SetProcessor(Processor):
    kind = "set"

    def __init__(self, config: dict[str, Any], **common: Any) -> None:
        super().__init__(config, **common)
        self.field = self.required("field")
        if "value" not in config and "copy_from" not in config:
            raise config_error(self.kind, self.tag, "[value] required property is missing")

    def apply_one(self, doc: IngestDoc) -> EsError | None:
        name = render(self.field, doc)
        if self.config.get("override", True) is False and get_path(doc.source, name) is not None:
            return None
        if "copy_from" in self.config:
            value = copy.deepcopy(get_path(doc.source, self.config["copy_from"]))
        else:
            value = render(self.config["value"], doc)
        if self.config.get("ignore_empty_value") and value in (None, ""):
            return None
        set_path(doc.source, name, value)
        return None


class RemoveProcessor(Processor):
    kind = "remove"

    def __init__(self, config: dict[str, Any], **common: Any) -> None:
        super().__init__(config, **common)
        fields = self.required("field")
        self.fields = fields if isinstance(fields, list) else [fields]

    def apply_one(self, doc: IngestDoc) -> EsError | None:
        for name in self.fields:
            if not remove_path(doc.source, render(name, doc)) and not self.config.get("ignore_missing", False):
                return EsError(
                    400, "illegal_argument_exception", f"field [{name}] not present as part of path [{name}]"
                )
        return None


class InferenceProcessor(Processor):
    """``inference``: ``model_id`` (a deployment, model or inference endpoint id) with ``input_output`` or the
    older ``field_map`` + ``target_field``; one inference request per input of each document."""

    kind = "inference"

    def __init__(self, config: dict[str, Any], *, infer: InferFn, input_field: InputFieldFn, **common: Any) -> None:
        super().__init__(config, **common)
        self.model_id = str(self.required("model_id"))
        self.infer, self.input_field = infer, input_field
        io = config.get("input_output")
        self.io: list[tuple[str, str]] | None = None
        if io is not None:
            if "target_field" in config:
                raise config_error(
                    self.kind,
                    self.tag,
                    "[target_field] option is incompatible with [input_output]. "
                    "Use the [output_field] option to specify where to write the inference results to.",
                )
            if "field_map" in config:
                raise config_error(self.kind, self.tag, "[field_map] option is incompatible with [input_output].")
            entries = io if isinstance(io, list) else [io]
            self.io = []
            for entry in entries:
                if not isinstance(entry, dict) or "input_field" not in entry:
                    raise config_error(self.kind, self.tag, "[input_field] required property is missing")
                if "output_field" not in entry:
                    raise config_error(self.kind, self.tag, "[output_field] required property is missing")
                self.io.append((entry["input_field"], entry["output_field"]))
        default_target = f"ml.inference.{self.tag}" if self.tag else "ml.inference"
        self.target = str(config.get("target_field", default_target))
        self.field_map: dict[str, str] = dict(config.get("field_map") or {})

    def _inputs(self, doc: IngestDoc) -> list[tuple[Any, str]] | EsError:
        """``(text, output path)`` of a document, or its missing-field error."""
        if self.io is not None:
            found = []
            for source_field, output in self.io:
                value = get_path(doc.source, source_field)
                if value is None:
                    if self.config.get("ignore_missing", False):
                        continue
                    return EsError(
                        400, "status_exception", f"Input field [{source_field}] does not exist in the source document"
                    )
                found.append((value, output))
            return found
        wanted = self.input_field(self.model_id)
        mapped = next((doc_field for doc_field, model_field in self.field_map.items() if model_field == wanted), wanted)
        value = get_path(doc.source, mapped)
        if value is None:
            return EsError(400, "status_exception", f"Input field [{wanted}] does not exist in the source document")
        return [(value, self.target)]

    def apply(self, docs: list[IngestDoc]) -> list[EsError | None]:
        outcomes: list[EsError | None] = [None] * len(docs)
        requests: list[tuple[int, Any, str]] = []
        for i, doc in enumerate(docs):
            inputs = self._inputs(doc)
            if isinstance(inputs, EsError):
                outcomes[i] = inputs
            else:
                requests += [(i, text, output) for text, output in inputs]
        try:
            results = self.infer(self.model_id, [text for _, text, _ in requests])
        except EsError as err:
            for i, _, _ in requests:
                outcomes[i] = outcomes[i] or err
            return outcomes
        for (i, _, output), result in zip(requests, results, strict=True):
            if isinstance(result, EsError):
                outcomes[i] = outcomes[i] or result
            elif outcomes[i] is None:
                value = result["predicted_value"]
                payload = value if self.io is not None else {"predicted_value": value, "model_id": self.model_id}
                set_path(docs[i].source, output, payload)
        return outcomes
