"""Apache Airflow provider that scales Elasticsearch ML trained-model deployments around batch inference."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from airflow_esml import _moved

try:
    #: the installed distribution's version; pyproject.toml is its one home
    __version__ = version("airflow-esml")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

_moved.install()
