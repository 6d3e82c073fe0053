"""The connection form of the ``elasticsearch_ml`` type, declared once for every supported Airflow.

Airflow 3.2+ reads the form from the provider info without importing the hook: ``conn-fields`` (typed
extra fields, JSON-schema style; ``"format": "password"`` marks a secret) and ``ui-field-behaviour``
(labels and placeholders of the standard fields). Airflow 3.1 asks the hook instead, through
``get_connection_form_widgets()`` (wtforms fields, shown when the FAB provider that brings wtforms is
installed) and ``get_ui_field_behaviour()``; both are built here from the same tables.

Pure data beside ``get_provider_info``, which Airflow calls while it discovers providers: it imports nothing
(not even ``core.params``, whose import chain reaches Airflow itself); the test pins its defaults to
``core.params``.
"""

from __future__ import annotations

from typing import Any

#: the same as core.params.DEFAULT_PORT / DEFAULT_REQUEST_TIMEOUT (a test keeps them equal)
DEFAULT_PORT = 9200
DEFAULT_REQUEST_TIMEOUT = 30

#: the typed extra fields, in the form of the provider info's ``conn-fields``
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "api_key": {
        "label": "API key",
        "description": "Encoded API key; used instead of login and password.",
        "schema": {"type": ["string", "null"], "format": "password"},
    },
    "cloud_id": {
        "label": "Elastic Cloud id",
        "description": "Instead of host and port.",
        "schema": {"type": ["string", "null"]},
    },
    "ca_certs": {
        "label": "CA certificate path",
        "description": "Path of the CA certificate that signed the cluster's certificate.",
        "schema": {"type": ["string", "null"]},
    },
    "verify_certs": {
        "label": "Verify TLS certificates",
        "description": "Switching it off logs a warning each time a client is created.",
        "schema": {"type": ["boolean", "null"], "default": True},
    },
    "request_timeout": {
        "label": "Request timeout (seconds)",
        "schema": {"type": ["integer", "null"], "default": DEFAULT_REQUEST_TIMEOUT, "minimum": 1},
    },
    "kibana_url": {
        "label": "Kibana URL",
        "description": "Kibana's base URL, for the operators' link to the trained models page.",
        "schema": {"type": ["string", "null"]},
    },
}

_LABELS = {"host": "Host(s)", "port": "Port", "schema": "Scheme (http or https)"}
_PLACEHOLDERS = {
    "host": "es1.example.com or es1.example.com,es2.example.com",
    "port": str(DEFAULT_PORT),
    "schema": "https",
    "login": "elastic (or leave empty with an API key)",
    "password": "password (an API key when login is empty)",
    "ca_certs": "/etc/ssl/certs/es-ca.crt",
    "cloud_id": "deployment-name:base64...",
    "kibana_url": "https://kibana.example.com:5601",
}

#: labels and placeholders of the form, in the provider info's (kebab-case) form
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": [],
    "relabeling": _LABELS,
    "placeholders": _PLACEHOLDERS,
}


def ui_field_behaviour() -> dict[str, Any]:
    """The same, in the form of ``BaseHook.get_ui_field_behaviour()`` (Airflow 3.1)."""
    return {"hidden_fields": [], "relabeling": dict(_LABELS), "placeholders": dict(_PLACEHOLDERS)}


def connection_form_widgets() -> dict[str, Any]:
    """``CONN_FIELDS`` as the wtforms fields of ``BaseHook.get_connection_form_widgets()`` (Airflow 3.1).

    :raises ImportError: when wtforms / flask-appbuilder are not installed; Airflow then shows the form
        without these fields (and says so at INFO level).
    """
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    from wtforms import BooleanField, IntegerField, PasswordField, StringField
    from wtforms.validators import NumberRange, Optional

    widgets: dict[str, Any] = {}
    for name, field in CONN_FIELDS.items():
        kinds = field["schema"]["type"]
        label, description = field["label"], field.get("description", "")
        if field["schema"].get("format") == "password":
            widgets[name] = PasswordField(label, widget=BS3PasswordFieldWidget(), description=description)
        elif "boolean" in kinds:
            widgets[name] = BooleanField(label, default=field["schema"].get("default"), description=description)
        elif "integer" in kinds:
            widgets[name] = IntegerField(
                label,
                widget=BS3TextFieldWidget(),
                default=field["schema"].get("default"),
                validators=[Optional(), NumberRange(min=field["schema"].get("minimum", 1))],
                description=description,
            )
        else:
            widgets[name] = StringField(label, widget=BS3TextFieldWidget(), description=description)
    return widgets
