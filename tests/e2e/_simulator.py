"""The Elasticsearch ML simulator as a child process, with TLS and an API key."""

from __future__ import annotations

import json
import re
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.e2e._procs import ManagedProcess, ProcessSet

SIMULATOR_MODULE = "airflow_esml.testing.simulator"


@dataclass(frozen=True)
class RunningSimulator:
    """
    A started simulator.

    :param url: its ``https://127.0.0.1:PORT`` address.
    :param ca_file: the CA certificate that signed its server certificate.
    :param api_key: the API key it demands.
    :param process: the child process.
    """

    url: str
    ca_file: Path
    api_key: str
    process: ManagedProcess

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].rstrip("/"))

    def connection_json(self, **extra: object) -> str:
        """
        The ``AIRFLOW_CONN_ELASTICSEARCH_DEFAULT`` value (JSON form) for this simulator.

        :param extra: more (or overriding) connection extras, e.g. ``verify_certs=False``.
        """
        extras: dict[str, object] = {"api_key": self.api_key, "ca_certs": str(self.ca_file)}
        extras.update(extra)
        extras = {name: value for name, value in extras.items() if value is not None}
        return json.dumps(
            {"conn_type": "elasticsearch", "host": "127.0.0.1", "port": self.port, "schema": "https", "extra": extras}
        )


def simulator_available() -> bool:
    """Whether the simulator's CLI module is importable yet."""
    import importlib.util

    try:
        return importlib.util.find_spec(SIMULATOR_MODULE) is not None
    except ModuleNotFoundError:
        return False


def start_simulator(processes: ProcessSet, workdir: Path, args: Sequence[str], timeout: float = 30) -> RunningSimulator:
    """
    Start the simulator with TLS and a random API key; wait for its ``listening on URL`` line.

    :param processes: the set that will stop it.
    :param workdir: folder for its certificates and log.
    :param args: cluster arguments, e.g. ``["--ml-node", "n1:8", "--model", "m", "--deploy", "m:1"]``.
    :param timeout: seconds to wait for it to listen.
    """
    api_key = secrets.token_urlsafe(24)
    tls_dir = workdir / "sim-tls"
    tls_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", SIMULATOR_MODULE, *simulator_args(api_key, tls_dir, args)]
    process = processes.start("simulator", argv, _child_env(), workdir / "simulator.log")
    match = process.wait_for_log(r"listening on (https://\S+)", timeout)
    ca_file = tls_dir / "ca.crt"
    if not ca_file.is_file():
        raise RuntimeError(f"simulator wrote no {ca_file}")
    return RunningSimulator(url=match.group(1), ca_file=ca_file, api_key=api_key, process=process)


def simulator_args(api_key: str, tls_dir: Path, args: Sequence[str]) -> list[str]:
    """
    The simulator's command-line arguments.

    The key is joined to its flag with ``=``: a random URL-safe key starts with ``-`` one time in 64, and
    argparse would take ``--api-key -xyz`` for a flag without its value.

    :param api_key: the API key it demands.
    :param tls_dir: folder for its certificates.
    :param args: cluster arguments.
    """
    return ["--port", "0", f"--api-key={api_key}", "--tls-dir", str(tls_dir), *args]


def _child_env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def redact(text: str, api_key: str) -> str:
    """Hide the key in text we print on failure (the leak check runs on the raw text)."""
    return re.sub(re.escape(api_key), "***", text)
