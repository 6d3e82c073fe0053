"""Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_esml import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-esml",
        "name": "Elasticsearch ML",
        "description": "Scale Elasticsearch ML trained-model deployments up before batch inference and back down after.",
        "versions": [__version__],
    }
