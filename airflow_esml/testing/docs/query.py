"""The queries the simulator understands: ``match_all``, single-field ``term`` and ``terms``, ``exists``,
and ``bool`` of those (``must``/``filter``/``must_not``/``should``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow_esml.testing.protocol import EsError

Matcher = Callable[[dict[str, Any]], bool]


def query_matcher(query: Any) -> Matcher:
    """A predicate over ``_source`` for a query object; 400 for anything else."""
    if not isinstance(query, dict) or len(query) != 1:
        raise EsError(400, "parsing_exception", "[query] malformed query, expected a single query object")
    ((kind, spec),) = query.items()
    if kind == "match_all":
        return lambda source: True
    if kind == "term" and isinstance(spec, dict) and len(spec) == 1:
        ((field_name, value),) = spec.items()
        if isinstance(value, dict):
            value = value.get("value")
        return lambda source: field_value(source, field_name) == value
    if kind == "terms" and isinstance(spec, dict) and len(spec) == 1:
        ((field_name, values),) = spec.items()
        return lambda source: field_value(source, field_name) in list(values)
    if kind == "exists" and isinstance(spec, dict) and "field" in spec:
        name = spec["field"]
        return lambda source: field_value(source, name) is not None
    if kind == "bool" and isinstance(spec, dict):
        return _bool(spec)
    raise EsError(
        400,
        "illegal_argument_exception",
        f"the simulator supports only [match_all], [term], [terms], [exists] and [bool] queries, got [{kind}]",
    )


def _clauses(spec: dict[str, Any], key: str) -> list[Matcher]:
    value = spec.get(key, [])
    return [query_matcher(q) for q in (value if isinstance(value, list) else [value])]


def _bool(spec: dict[str, Any]) -> Matcher:
    must = _clauses(spec, "must") + _clauses(spec, "filter")
    must_not, should = _clauses(spec, "must_not"), _clauses(spec, "should")

    def match(source: dict[str, Any]) -> bool:
        if not all(m(source) for m in must) or any(m(source) for m in must_not):
            return False
        return not should or bool(must) or any(m(source) for m in should)

    return match


def field_value(source: dict[str, Any], dotted: str) -> Any:
    """The value at a dotted path (a ``.keyword`` suffix ignored), or ``None``."""
    value: Any = source
    for part in dotted.removesuffix(".keyword").split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value
