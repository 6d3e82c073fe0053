"""Elasticsearch's scalar value formats, with its own parse errors: time values (``30s``, ``TimeValue``),
byte sizes (``450mb``, ``ByteSizeValue``), timestamps and node ids.

Query-string and JSON-body parameters are parsed in :mod:`airflow_esml.testing.api.request_values`.
"""

from __future__ import annotations

import base64
import datetime as dt
import random
from typing import Any

from airflow_esml.testing.protocol import EsError

_TIME_UNITS = {"nanos": 1e-9, "micros": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_BYTE_UNITS = {"pb": 1024**5, "tb": 1024**4, "gb": 1024**3, "mb": 1024**2, "kb": 1024, "b": 1}
_BYTE_SUFFIXES = {"p": "pb", "t": "tb", "g": "gb", "m": "mb", "k": "kb"}


def bad_request(type_: str, reason: str, **kwargs: Any) -> EsError:
    """A 400 :class:`EsError`.

    :param type_: the error type, e.g. ``illegal_argument_exception``.
    :param reason: the message.
    """
    return EsError(400, type_, reason, **kwargs)


def parse_time(text: str, setting: str) -> float:
    """Seconds of an Elasticsearch time value (``500ms``, ``30s``, ``-1``), like ``TimeValue.parseTimeValue``.

    :param text: the value.
    :param setting: the parameter name used in error messages.
    """
    value = text.strip().lower()
    if value in ("-1", "0"):
        return float(value)
    for suffix in sorted(_TIME_UNITS, key=len, reverse=True):
        if value.endswith(suffix) and value[: -len(suffix)].strip():
            number = value[: -len(suffix)].strip()
            try:
                count = int(number)
            except ValueError:
                try:
                    float(number)
                except ValueError:
                    raise _time_error(text, setting, "unit is missing or unrecognized") from None
                raise bad_request(
                    "illegal_argument_exception", f"failed to parse [{text}], fractional time values are not supported"
                ) from None
            if count < 0:
                raise _time_error(text, setting, "negative durations are not supported")
            return count * _TIME_UNITS[suffix]
    raise _time_error(text, setting, "unit is missing or unrecognized")


def _time_error(text: str, setting: str, why: str) -> EsError:
    return bad_request(
        "parse_exception", f"failed to parse setting [{setting}] with value [{text}] as a time value: {why}"
    )


def format_time(seconds: float) -> str:
    """``TimeValue.toString()``: the largest unit with one decimal at most (``30s``, ``1.5m``, ``500ms``)."""
    if seconds < 0:
        return "-1"
    if seconds == 0:
        return "0s"
    for suffix, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 1e-3), ("micros", 1e-6)):
        if seconds >= size * (1 - 1e-12):
            return _one_decimal(round(seconds / size, 1)) + suffix
    return _one_decimal(round(seconds / 1e-9, 1)) + "nanos"


def _one_decimal(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def parse_bytes(text: str, setting: str) -> int:
    """Bytes of an Elasticsearch byte-size value (``10kb``, ``471859200b``, ``0``).

    :param text: the value.
    :param setting: the parameter name used in error messages.
    """
    value = text.strip().lower()
    if value in ("-1", "0"):
        return int(value)
    for suffix in (*_BYTE_UNITS, *_BYTE_SUFFIXES):
        if value.endswith(suffix):
            number = value[: -len(suffix)].strip()
            unit = _BYTE_UNITS[_BYTE_SUFFIXES.get(suffix, suffix)]
            try:
                return int(float(number) * unit) if "." in number else int(number) * unit
            except ValueError:
                raise bad_request("parse_exception", f"failed to parse [{text}]") from None
    raise bad_request(
        "parse_exception",
        f"failed to parse setting [{setting}] with value [{text}] as a size in bytes: unit is missing or unrecognized",
    )


def format_bytes(count: int) -> str:
    """``ByteSizeValue.toString()``: largest unit, one decimal truncated (``450mb``, ``1.1gb``, ``100kb``)."""
    for suffix, size in _BYTE_UNITS.items():
        if count >= size:
            value = count / size
            whole = int(value)
            tenth = int((value - whole) * 10 + 1e-9)
            return f"{whole}{suffix}" if tenth == 0 else f"{whole}.{tenth}{suffix}"
    return f"{count}b"


def epoch_millis(wall_seconds: float) -> int:
    """Epoch milliseconds of a ``time.time()`` value."""
    return int(wall_seconds * 1000)


def iso_millis(wall_seconds: float) -> str:
    """``2026-03-02T09:14:03.215Z`` for a ``time.time()`` value."""
    millis = epoch_millis(wall_seconds)
    moment = dt.datetime.fromtimestamp(millis // 1000, tz=dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis % 1000:03d}Z"


def new_id(rng: random.Random) -> str:
    """A 22-character URL-safe base64 id, like Elasticsearch node and ephemeral ids."""
    return base64.urlsafe_b64encode(rng.getrandbits(128).to_bytes(16, "big")).decode()[:22]
