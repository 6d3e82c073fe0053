"""Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point.

The version and the documentation URL come from the installed distribution's metadata, whose one home is
``pyproject.toml`` (``version`` and ``[project.urls] Documentation``); Airflow 3.2+ reads the documentation
URL from the same place.
"""

from __future__ import annotations

import copy
from importlib.metadata import PackageNotFoundError, metadata
from importlib.resources import files
from typing import Any

from airflow_esml import __version__
from airflow_esml.connection_form import CONN_FIELDS, UI_FIELD_BEHAVIOUR

DISTRIBUTION = "airflow-esml"
INTEGRATION = "Elasticsearch ML"
#: the integration's logo, a path below the package in the form Airflow's providers use
LOGO = "/integration-logos/Elasticsearch-ML.svg"
#: the how-to guides, below the documentation URL
HOW_TO_GUIDES = (
    "install.md",
    "leases.md",
    "reservations.md",
    "careful-scaling.md",
    "inference-endpoints.md",
    "in-cluster-inference.md",
    "accounting.md",
)


def project_url(label: str) -> str | None:
    """A ``Project-URL`` of the installed distribution by its label (any case), or None.

    :param label: the label in ``[project.urls]``, for example ``Documentation``.
    """
    try:
        entries = metadata(DISTRIBUTION).get_all("Project-URL") or []
    except PackageNotFoundError:
        return None
    for entry in entries:
        name, _, url = entry.partition(",")
        if url and name.strip().lower() == label.lower():
            return url.strip()
    return None


def logo_file() -> Any:
    """The logo as a resource of the installed package (a ``Traversable``)."""
    return files("airflow_esml").joinpath(LOGO.lstrip("/"))


def get_provider_info() -> dict[str, Any]:
    """The provider's metadata, in the form of Airflow's ``provider_info.schema.json``."""
    docs = project_url("Documentation")
    base = docs.rstrip("/") + "/" if docs else "docs/"
    info: dict[str, Any] = {
        "package-name": DISTRIBUTION,
        "name": "Elasticsearch ML",
        "description": (
            "Scale Elasticsearch ML trained-model deployments up before batch inference and back down after."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://www.elastic.co/docs/api/doc/elasticsearch/group/endpoint-ml",
                "how-to-guide": [base + page for page in HOW_TO_GUIDES],
                "logo": LOGO,
                "tags": ["software"],
            }
        ],
        "hooks": [
            {"integration-name": INTEGRATION, "python-modules": ["airflow_esml.hooks.ml", "airflow_esml.hooks.tasks"]}
        ],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "airflow_esml.operators.deployment",
                    "airflow_esml.operators.inference",
                    "airflow_esml.operators.lease",
                    "airflow_esml.operators.reservation",
                    "airflow_esml.operators.index_inference",
                ],
            }
        ],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": ["airflow_esml.sensors.deployment"]}],
        "triggers": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "airflow_esml.triggers.deployment",
                    "airflow_esml.triggers.lease",
                    "airflow_esml.triggers.task",
                ],
            }
        ],
        "extra-links": ["airflow_esml.links.TrainedModelsLink"],
        # core.params.INSTALLATION_OPTION (not imported: Airflow calls this while it discovers providers)
        "config": {
            "esml": {
                "description": "The Elasticsearch ML provider (airflow-esml).",
                "options": {
                    "installation_id": {
                        "description": (
                            "Tells this Airflow installation apart from others that share the cluster's leases: "
                            "it starts every lease id, so two installations that run a DAG of the same id "
                            "(hence the same run ids) never share a lease. Up to 64 letters, digits, '.', '_' "
                            "or '-'; empty means no prefix."
                        ),
                        "version_added": "0.1.0",
                        "type": "string",
                        "example": "search-team-prod",
                        "default": "",
                    }
                },
            }
        },
        "connection-types": [
            {
                "hook-class-name": "airflow_esml.hooks.ml.ElasticsearchMLHook",
                "hook-name": "Elasticsearch ML",
                "connection-type": "elasticsearch_ml",
                "conn-fields": copy.deepcopy(CONN_FIELDS),
                "ui-field-behaviour": copy.deepcopy(UI_FIELD_BEHAVIOUR),
            }
        ],
    }
    if docs:
        info["documentation-url"] = docs
    return info
