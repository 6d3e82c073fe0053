"""Apache Airflow provider that scales Elasticsearch ML trained-model deployments around batch inference."""

from __future__ import annotations

__version__ = "0.1.0"
