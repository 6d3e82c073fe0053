"""Hooks of the airflow-esml provider."""

from __future__ import annotations

from airflow_esml.core.params import DEFAULT_CONN_ID

__all__ = ["DEFAULT_CONN_ID"]
