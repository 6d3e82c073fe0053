"""A real multi-process Airflow (api-server, scheduler, dag-processor, triggerer) for the e2e tests."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography.fernet import Fernet

from tests.e2e._database import MetadataDatabase
from tests.e2e._procs import ManagedProcess, ProcessSet, free_port

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
ADMIN_USER = "e2e-admin"


@dataclass
class StackConfig:
    """
    What the stack runs on.

    :param home: the AIRFLOW_HOME folder (fresh per test module).
    :param database: the metadata database.
    :param dag_folders: bundle name -> folder, one LocalDagBundle each.
    :param extra_env: more environment variables, e.g. ``AIRFLOW_CONN_*``.
    """

    home: Path
    database: MetadataDatabase
    dag_folders: Mapping[str, Path]
    extra_env: Mapping[str, str] = field(default_factory=dict)


def _bundles(dag_folders: Mapping[str, Path]) -> str:
    return json.dumps(
        [
            {
                "name": name,
                "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(path), "refresh_interval": 5},
            }
            for name, path in dag_folders.items()
        ]
    )


class AirflowStack:
    """
    Airflow 3 as separate processes on one machine, configured only through environment variables.

    :param config: home folder, database, DAG folders and extra environment.
    """

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.admin_password = secrets.token_urlsafe(16)
        self.jwt_secret = secrets.token_urlsafe(32)
        self.logs_folder = config.home / "logs"
        self.component_logs = config.home / "component-logs"
        self.processes = ProcessSet()
        self.components: dict[str, ManagedProcess] = {}
        self.env = self._environment()
        passwords = config.home / "simple_auth_manager_passwords.json"
        passwords.write_text(json.dumps({ADMIN_USER: self.admin_password}))

    @property
    def secrets(self) -> dict[str, str]:
        """Secrets of the stack itself that must never show up in logs or API answers."""
        found = {"airflow admin password": self.admin_password, "jwt secret": self.jwt_secret}
        if self.config.database.password:
            found["database password"] = self.config.database.password
        return found

    def _environment(self) -> dict[str, str]:
        home = self.config.home
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(
            {
                "AIRFLOW_HOME": str(home),
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
                "PYTHONUNBUFFERED": "1",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__CORE__DAGS_FOLDER": str(next(iter(self.config.dag_folders.values()))),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "simple_auth_manager_passwords.json"),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.config.database.sql_alchemy_conn,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__EXPOSE_CONFIG": "False",
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(16),
                "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.logs_folder),
                "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": _bundles(self.config.dag_folders),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                # runs come only from the REST API: no scheduled run of a cron DAG on unpause
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "4",
            }
        )
        env.update(self.config.extra_env)
        return env

    def airflow(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """
        Run one ``airflow`` CLI command in the stack's environment and fail loudly if it fails.

        :param args: the CLI arguments.
        :param timeout: seconds before the command is killed.
        """
        result = subprocess.run(
            [AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def start_component(self, name: str, argv: Sequence[str] | None = None) -> ManagedProcess:
        """
        Start ``airflow <name>`` (or ``argv``) in its own process group; logs go to component-logs/.

        :param name: the component, e.g. ``scheduler``.
        :param argv: extra CLI arguments.
        """
        generation = sum(1 for key in self.components if key.startswith(f"{name}#"))
        log_path = self.component_logs / f"{name}-{generation}.log"
        process = self.processes.start(name, [AIRFLOW, name, *(argv or [])], self.env, log_path)
        self.components[f"{name}#{generation}"] = process
        self.components[name] = process
        return process

    def start(self, timeout: float = 180) -> None:
        """
        Migrate the database and start every component; return once the API reports all healthy.

        :param timeout: seconds to wait for the components to be healthy.
        """
        self.airflow("db", "migrate", timeout=timeout)
        self.start_component("api-server")
        # One host, one logs folder: the api-server reads task and trigger logs from files, so the
        # scheduler and triggerer serve none (their log servers would listen on every interface).
        self.start_component("scheduler", ["--skip-serve-logs"])
        self.start_component("dag-processor")
        self.start_component("triggerer", ["--skip-serve-logs"])
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float) -> dict[str, object]:
        """
        Wait until ``/api/v2/monitor/health`` reports every component healthy.

        :param timeout: seconds to wait.
        """
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                response = httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
                last = response.json() if response.status_code == 200 else response.text
                if response.status_code == 200 and all(
                    isinstance(part, dict) and part.get("status") in (None, "healthy")
                    for part in last.values()  # type: ignore[union-attr]
                ):
                    return last  # type: ignore[return-value]
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(1)
        raise TimeoutError(f"Airflow not healthy after {timeout:.0f}s; last health answer: {last}")

    def _check_alive(self) -> None:
        for name in ("api-server", "scheduler", "dag-processor", "triggerer"):
            process = self.components.get(name)
            if process is not None and not process.alive():
                raise RuntimeError(f"{name} exited with {process.popen.returncode}:\n{process.tail()}")

    def crash_and_restart_triggerer(self) -> tuple[ManagedProcess, ManagedProcess]:
        """Kill the triggerer's whole process group (a crash), then start a new one; return both."""
        old = self.components["triggerer"]
        old.kill()
        return old, self.start_component("triggerer", ["--skip-serve-logs"])

    def stop(self) -> None:
        self.processes.stop_all()

    def all_log_files(self) -> list[Path]:
        """Task and trigger logs under the logs folder plus every component's own output."""
        folders = [self.logs_folder, self.component_logs]
        return sorted(p for folder in folders if folder.exists() for p in folder.rglob("*") if p.is_file())
