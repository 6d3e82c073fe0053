from __future__ import annotations

import copy
import email.message
import json
import subprocess
import sys
from importlib import resources
from importlib.metadata import entry_points
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import pytest
import tomllib

import airflow_esml
from airflow_esml import get_provider_info as provider_info_module
from airflow_esml.get_provider_info import get_provider_info

PYPROJECT = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
DOCS_URL = PYPROJECT["project"]["urls"]["Documentation"]


def airflow_schema() -> dict:
    return json.loads(resources.files("airflow").joinpath("provider_info.schema.json").read_text())


def strict_schema() -> dict:
    """Airflow's schema, plus the fields it leaves open that this provider fills: every one required."""
    schema = copy.deepcopy(airflow_schema())
    schema["properties"]["documentation-url"] = {"type": "string", "pattern": "^https://"}
    schema["properties"]["versions"] = {"type": "array", "items": {"type": "string"}, "minItems": 1}
    schema["required"] = [*schema.get("required", []), "package-name", "versions", "documentation-url"]
    item = schema["properties"]["integrations"]["items"]
    item["properties"]["how-to-guide"] = {"type": "array", "items": {"type": "string"}, "minItems": 1}
    item["required"] = ["integration-name", "external-doc-url", "how-to-guide", "logo", "tags"]
    return schema


@pytest.fixture
def installed_metadata(monkeypatch):
    """The package metadata a wheel built from this tree carries (the shared editable install may predate it)."""
    message = email.message.Message()
    message["Name"] = "airflow-esml"
    for label, url in PYPROJECT["project"]["urls"].items():
        message["Project-URL"] = f"{label}, {url}"
    monkeypatch.setattr(provider_info_module, "metadata", lambda name: message)


def test_provider_info_passes_airflows_schema():
    jsonschema.validate(get_provider_info(), airflow_schema())


def test_provider_info_fills_documentation_how_to_logo_and_version(installed_metadata):
    info = get_provider_info()
    jsonschema.validate(info, strict_schema())
    assert info["documentation-url"] == DOCS_URL
    (integration,) = info["integrations"]
    assert integration["how-to-guide"][0] == f"{DOCS_URL}/install.md"
    assert info["versions"] == [airflow_esml.__version__]


def test_how_to_guides_and_logo_exist():
    info = get_provider_info()
    (integration,) = info["integrations"]
    root = Path(__file__).parents[1]
    for guide in integration["how-to-guide"]:
        assert (root / "docs" / guide.rsplit("/", 1)[-1]).is_file(), guide
    assert integration["logo"].startswith("/") and integration["logo"].endswith(".svg")
    logo = provider_info_module.logo_file()
    assert logo.is_file() and "<svg" in logo.read_text()


def test_version_comes_from_the_package_metadata():
    from importlib.metadata import version

    assert airflow_esml.__version__ == version("airflow-esml") == PYPROJECT["project"]["version"]
    assert get_provider_info()["versions"] == [airflow_esml.__version__]


def test_documentation_url_is_left_out_without_metadata(monkeypatch):
    from importlib.metadata import PackageNotFoundError

    def missing(name):
        raise PackageNotFoundError(name)

    monkeypatch.setattr(provider_info_module, "metadata", missing)
    info = get_provider_info()
    assert "documentation-url" not in info
    jsonschema.validate(info, airflow_schema())


def test_entry_point_is_registered():
    (entry,) = [e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("airflow_esml")]
    assert entry.load()()["package-name"] == "airflow-esml"


def test_every_listed_module_and_class_imports():
    info = get_provider_info()
    for kind in ("hooks", "operators", "sensors", "triggers"):
        for item in info[kind]:
            for module in item["python-modules"]:
                __import__(module)
    for conn in info["connection-types"]:
        module, _, name = conn["hook-class-name"].rpartition(".")
        assert getattr(__import__(module, fromlist=[name]), name).conn_type == conn["connection-type"]


def test_providers_manager_loads_it_without_warnings(airflow_db):
    code = """
import logging
logging.basicConfig(level=logging.WARNING)
from airflow.providers_manager import ProvidersManager
try:
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime as HookRegistry
except ImportError:  # Airflow 3.1: hooks are registered with the core manager
    HookRegistry = ProvidersManager
print("airflow-esml" in ProvidersManager().providers, "elasticsearch_ml" in HookRegistry().hooks)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "True"], done.stderr
    assert "airflow_esml" not in done.stderr and "airflow-esml" not in done.stderr
    listed = subprocess.run([sys.executable, "-m", "airflow", "providers", "list"], capture_output=True, text=True)
    assert "airflow-esml" in listed.stdout


def test_providers_manager_sees_the_connection_form(airflow_db):
    code = """
import json
from airflow.providers_manager import ProvidersManager
pm = ProvidersManager()
widgets = {k: (w.field_name, w.is_sensitive) for k, w in pm.connection_form_widgets.items() if "elasticsearch_ml" in k}
import importlib.util
from packaging.version import Version
from airflow import __version__
# Airflow 3.2+ reads conn-fields; 3.1 builds the form from the hook's wtforms widgets, when wtforms is there
typed = Version(__version__).release >= (3, 2) or importlib.util.find_spec("wtforms") is not None
print(json.dumps({"widgets": widgets, "behaviour": pm.field_behaviours.get("elasticsearch_ml"), "typed": typed}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    prefix = "extra__elasticsearch_ml__"
    expected = {"api_key", "cloud_id", "ca_certs", "verify_certs", "request_timeout", "kibana_url"}
    assert {key.removeprefix(prefix) for key in seen["widgets"]} == (expected if seen["typed"] else set())
    if not seen["typed"]:
        return  # Airflow 3.1 without the FAB provider's wtforms: the UI shows the standard fields only
    assert [k for k, (_, sensitive) in seen["widgets"].items() if sensitive] == [f"{prefix}api_key"]
    behaviour = seen["behaviour"]
    assert behaviour["relabeling"]["schema"] == "Scheme (http or https)"
    assert behaviour["relabeling"]["host"] == "Host(s)"
    assert behaviour["placeholders"]["port"] == "9200"
    assert behaviour["placeholders"][f"{prefix}ca_certs"].startswith("/")


def test_conn_fields_are_typed_as_the_hook_reads_them():
    from airflow_esml.connection_form import CONN_FIELDS
    from airflow_esml.hooks.connection import client_kwargs

    types = {name: field["schema"]["type"][0] for name, field in CONN_FIELDS.items()}
    assert types == {
        "api_key": "string",
        "cloud_id": "string",
        "ca_certs": "string",
        "verify_certs": "boolean",
        "request_timeout": "integer",
        "kibana_url": "string",
    }
    # what the form saves: typed values, and nulls or empty strings for the fields left empty
    conn = SimpleNamespace(conn_id="es", host="es1", port=None, schema="https", login=None, password=None)
    saved = {"api_key": None, "cloud_id": "", "ca_certs": "/ca.crt", "verify_certs": True, "request_timeout": 30}
    kwargs = client_kwargs(conn, {**saved, "kibana_url": None})
    assert kwargs["hosts"] == ["https://es1:9200"] and kwargs["request_timeout"] == 30.0
    assert kwargs["ca_certs"] == "/ca.crt" and "api_key" not in kwargs


def test_form_defaults_are_the_hooks_defaults():
    from airflow_esml import connection_form
    from airflow_esml.core.params import DEFAULT_PORT, DEFAULT_REQUEST_TIMEOUT

    assert connection_form.DEFAULT_PORT == DEFAULT_PORT
    assert connection_form.DEFAULT_REQUEST_TIMEOUT == DEFAULT_REQUEST_TIMEOUT


def test_airflow_3_1_fallback_declares_the_same_fields(monkeypatch):
    """Airflow 3.1 asks the hook; with wtforms and flask-appbuilder stubbed, the hook gives the same fields."""
    import types

    from airflow_esml.connection_form import CONN_FIELDS
    from airflow_esml.hooks.ml import ElasticsearchMLHook

    class Field:
        def __init__(self, label, **kwargs):
            self.label, self.kwargs = label, kwargs

    stubs = {
        "wtforms": {
            name: type(name, (Field,), {}) for name in ("BooleanField", "IntegerField", "PasswordField", "StringField")
        },
        "wtforms.validators": {"NumberRange": lambda **kw: ("NumberRange", kw), "Optional": lambda: "Optional"},
        "flask_appbuilder": {},
        "flask_appbuilder.fieldwidgets": {"BS3PasswordFieldWidget": object, "BS3TextFieldWidget": object},
    }
    for name, attrs in stubs.items():
        monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(**attrs))
    widgets = ElasticsearchMLHook.get_connection_form_widgets()
    assert set(widgets) == set(CONN_FIELDS)
    kinds = {name: type(field).__name__ for name, field in widgets.items()}
    assert kinds["api_key"] == "PasswordField" and kinds["verify_certs"] == "BooleanField"
    assert kinds["request_timeout"] == "IntegerField" and kinds["ca_certs"] == "StringField"
    assert ElasticsearchMLHook.get_ui_field_behaviour()["relabeling"]["schema"] == "Scheme (http or https)"


def test_the_config_section_declares_the_installation_option():
    from airflow_esml.core.params import INSTALLATION_OPTION

    section, option = INSTALLATION_OPTION
    declared = get_provider_info()["config"][section]["options"][option]
    assert declared["default"] == "" and declared["type"] == "string"
