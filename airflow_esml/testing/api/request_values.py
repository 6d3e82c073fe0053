"""Query-string and JSON-body parameter values as Elasticsearch's REST layer parses them, with its messages.

``RestRequest.paramAsInt`` / ``paramAsBoolean``, ``Booleans.parseBoolean``, the lenient number coercion of
the x-content parser, ObjectParser's ``failed to parse field`` errors and ``BaseRestHandler``'s check of
unrecognized parameters. Time values and byte sizes are in :mod:`airflow_esml.testing.cluster.values`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from airflow_esml.testing.cluster.values import bad_request
from airflow_esml.testing.protocol import EsError


def query_int(query: Mapping[str, str], name: str) -> int | None:
    """``RestRequest.paramAsInt``: a strict integer, or ``None`` when absent."""
    if name not in query:
        return None
    raw = query[name]
    if not re.fullmatch(r"[+-]?[0-9]+", raw):
        raise bad_request("illegal_argument_exception", f"Failed to parse int parameter [{name}] with value [{raw}]")
    return int(raw)


def query_bool(query: Mapping[str, str], name: str, default: bool) -> bool:
    """``RestRequest.paramAsBoolean``: ``true``/``false`` (an empty value means true)."""
    if name not in query:
        return default
    return parse_bool(query[name])


def parse_bool(value: str) -> bool:
    """``Booleans.parseBoolean`` with its error message."""
    if value in ("", "true"):
        return True
    if value == "false":
        return False
    raise bad_request(
        "illegal_argument_exception", f"Failed to parse value [{value}] as only [true] or [false] are allowed."
    )


def body_location(body: Any, field: str) -> str:
    """An approximate ``[line:column]`` of ``field``'s value in the compact JSON the client sends."""
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    index = text.find(json.dumps(field) + ":")
    column = index + len(json.dumps(field)) + 2 if index >= 0 else 1
    return f"[1:{column}]"


def body_parse_error(body: Any, field: str, action: str, cause: EsError | None = None) -> EsError:
    """The ``x_content_parse_exception`` ObjectParser raises for a bad field value."""
    caused = {"type": cause.type, "reason": cause.reason} if cause else None
    return bad_request(
        "x_content_parse_exception",
        f"{body_location(body, field)} [{action}] failed to parse field [{field}]",
        caused_by=caused,
    )


def body_int(body: Mapping[str, Any], field: str, action: str) -> int:
    """A lenient integer from a JSON body: ``"3"`` -> 3, ``2.7`` -> 2; anything else -> 400."""
    value = body[field]
    if isinstance(value, bool) or value is None:
        raise body_parse_error(body, field, action)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value.strip())) if value.strip() else int("x")
        except ValueError:
            cause = EsError(400, "number_format_exception", f'For input string: "{value}"')
            raise body_parse_error(body, field, action, cause) from None
    raise body_parse_error(body, field, action)


def body_str(body: Mapping[str, Any], field: str, action: str) -> str:
    """A string field of a JSON body (numbers are accepted as their text)."""
    value = body[field]
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return json.dumps(value)
    raise body_parse_error(body, field, action)


def body_bool(body: Mapping[str, Any], field: str, action: str) -> bool:
    """A boolean field of a JSON body (``"true"``/``"false"`` strings are accepted)."""
    value = body[field]
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in ("true", "false"):
        return value == "true"
    raise body_parse_error(body, field, action)


def unrecognized_params(path: str, query: Mapping[str, str], allowed: set[str]) -> None:
    """Reject query parameters no handler consumes, as ``BaseRestHandler`` does.

    :param path: the request path, quoted in the message.
    :param query: the query parameters.
    :param allowed: the names this endpoint reads (common ones such as ``pretty`` are always allowed).
    """
    common = {"pretty", "human", "error_trace", "filter_path", "format"}
    unknown = sorted(k for k in query if k not in allowed and k not in common)
    if not unknown:
        return
    noun = "parameter" if len(unknown) == 1 else "parameters"
    listed = ", ".join(f"[{k}]" for k in unknown)
    raise bad_request("illegal_argument_exception", f"request [{path}] contains unrecognized {noun}: {listed}")
