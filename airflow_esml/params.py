"""Checks of task parameters that also run while a DAG file is parsed, so this module stays cheap to import."""

from __future__ import annotations

from typing import Any, Literal

from airflow_esml.exceptions import InvalidParameterError

#: the index that holds the lease documents unless a task names another
DEFAULT_LEASES_INDEX = "esml-leases"
DriftPolicy = Literal["respect", "restore"]
DRIFT_POLICIES: tuple[str, ...] = ("respect", "restore")


def positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` as an int of at least ``minimum``; digit strings (rendered templates) are accepted."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        number = int(value.strip())
    if number is None or number < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
        raise InvalidParameterError(f"{name} must be {kind}, got {value!r}")
    return number


def check_drift_policy(value: str) -> DriftPolicy:
    """``value`` if it is a drift policy; otherwise an :class:`InvalidParameterError` naming the choices."""
    if value not in DRIFT_POLICIES:
        raise InvalidParameterError(f"on_drift must be one of {DRIFT_POLICIES}, got {value!r}")
    return value  # type: ignore[return-value]
