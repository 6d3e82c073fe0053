"""Hooks of the airflow-esml provider."""

from __future__ import annotations

DEFAULT_CONN_ID = "elasticsearch_default"
