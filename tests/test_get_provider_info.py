from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from importlib.metadata import entry_points

import jsonschema

from airflow_esml.get_provider_info import get_provider_info


def test_provider_info_passes_airflows_schema():
    schema = json.loads(resources.files("airflow").joinpath("provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


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
