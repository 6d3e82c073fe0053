"""Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_esml import __version__

INTEGRATION = "Elasticsearch ML"


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-esml",
        "name": "Elasticsearch ML",
        "description": (
            "Scale Elasticsearch ML trained-model deployments up before batch inference and back down after."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://www.elastic.co/docs/api/doc/elasticsearch/group/endpoint-ml",
                "tags": ["software"],
            }
        ],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": ["airflow_esml.hooks.ml"]}],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "airflow_esml.operators.deployment",
                    "airflow_esml.operators.inference",
                    "airflow_esml.operators.lease",
                    "airflow_esml.operators.reservation",
                ],
            }
        ],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": ["airflow_esml.sensors.deployment"]}],
        "triggers": [{"integration-name": INTEGRATION, "python-modules": ["airflow_esml.triggers.deployment"]}],
        "extra-links": ["airflow_esml.links.TrainedModelsLink"],
        "connection-types": [
            {
                "hook-class-name": "airflow_esml.hooks.ml.ElasticsearchMLHook",
                "hook-name": "Elasticsearch ML",
                "connection-type": "elasticsearch_ml",
                "ui-field-behaviour": {
                    "hidden-fields": [],
                    "relabeling": {"schema": "Scheme (http or https)"},
                    "placeholders": {
                        "host": "localhost or es1.example.com,es2.example.com",
                        "port": "9200",
                        "schema": "https",
                        "extra": '{"api_key": "...", "ca_certs": "/path/ca.crt", "verify_certs": true}',
                    },
                },
            }
        ],
    }
