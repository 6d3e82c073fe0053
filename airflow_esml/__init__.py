"""Apache Airflow provider that scales Elasticsearch ML trained-model deployments around batch inference."""

from __future__ import annotations

from airflow_esml import _moved

__version__ = "0.1.0"

_moved.install()
