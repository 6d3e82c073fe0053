from __future__ import annotations

import copy
import email.message
import json
import subprocess
import sys
from importlib import resources
from importlib.metadata import entry_points
from pathlib import Path

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
