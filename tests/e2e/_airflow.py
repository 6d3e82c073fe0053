"""
A real multi-process Airflow (api-server, scheduler, dag-processor, triggerers, and Celery workers with the
CeleryExecutor) for the e2e tests.
"""

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
from urllib.parse import urlsplit

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
    :param executor: ``LocalExecutor`` or ``CeleryExecutor``.
    :param triggerers: how many triggerers to start (named ``triggerer`` when one, else ``triggerer-1``...).
    :param celery_workers: how many ``airflow celery worker`` processes (``celery-worker-1``...), CeleryExecutor.
    :param worker_concurrency: task slots of each Celery worker.
    :param broker_url: the Celery broker (``redis://...``), CeleryExecutor only.
    :param component_env: component name (e.g. ``triggerer-2``) -> environment variables of that process only.
    """

    home: Path
    database: MetadataDatabase
    dag_folders: Mapping[str, Path]
    extra_env: Mapping[str, str] = field(default_factory=dict)
    executor: str = "LocalExecutor"
    triggerers: int = 1
    celery_workers: int = 0
    worker_concurrency: int = 2
    broker_url: str | None = None
    component_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def triggerer_names(self) -> list[str]:
        if self.triggerers == 1:
            return ["triggerer"]
        return [f"triggerer-{n}" for n in range(1, self.triggerers + 1)]

    def worker_names(self) -> list[str]:
        return [f"celery-worker-{n}" for n in range(1, self.celery_workers + 1)]


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
        #: the components that must be running (a component killed on purpose leaves this set)
        self.required: set[str] = set()
        self.env = self._environment()
        passwords = config.home / "simple_auth_manager_passwords.json"
        passwords.write_text(json.dumps({ADMIN_USER: self.admin_password}))

    @property
    def secrets(self) -> dict[str, str]:
        """Secrets of the stack itself that must never show up in logs or API answers."""
        found = {"airflow admin password": self.admin_password, "jwt secret": self.jwt_secret}
        if self.config.database.password:
            found["database password"] = self.config.database.password
        broker_password = urlsplit(self.config.broker_url or "").password
        if broker_password:
            found["broker password"] = broker_password
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
        if self.config.executor == "CeleryExecutor":
            env.update(self._celery_environment())
        env.update(self.config.extra_env)
        return env

    def _celery_environment(self) -> dict[str, str]:
        if not self.config.broker_url or self.config.database.backend != "postgresql":
            raise ValueError("the CeleryExecutor needs a broker_url and a PostgreSQL metadata database")
        return {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CELERY__BROKER_URL": self.config.broker_url,
            # task states go through the metadata database (Celery's database result backend)
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.config.database.sql_alchemy_conn,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.config.worker_concurrency),
            "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
            "AIRFLOW__CELERY__OPERATION_TIMEOUT": "10",
        }

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

    def start_component(
        self, name: str, argv: Sequence[str] | None = None, *, label: str | None = None
    ) -> ManagedProcess:
        """
        Start ``airflow <name>`` (or ``argv``) in its own process group; logs go to component-logs/.

        :param name: the component, e.g. ``scheduler`` (the CLI command).
        :param argv: extra CLI arguments.
        :param label: the name of this process (default ``name``), e.g. ``triggerer-2``; its own environment
            comes from ``StackConfig.component_env[label]``.
        """
        label = label or name
        generation = sum(1 for key in self.components if key.startswith(f"{label}#"))
        log_path = self.component_logs / f"{label}-{generation}.log"
        env = {**self.env, **self.config.component_env.get(label, {})}
        process = self.processes.start(label, [AIRFLOW, name, *(argv or [])], env, log_path)
        self.components[f"{label}#{generation}"] = process
        self.components[label] = process
        self.required.add(label)
        return process

    def start_triggerer(self, label: str) -> ManagedProcess:
        return self.start_component("triggerer", ["--skip-serve-logs"], label=label)

    def start_celery_worker(self, label: str) -> ManagedProcess:
        """
        Start ``airflow celery worker`` named ``label``: no log server, no mingle or gossip between workers.

        :param label: e.g. ``celery-worker-1``; also its Celery hostname.
        """
        argv = ["worker", "--skip-serve-logs", "--celery-hostname", f"{label}@127.0.0.1", "--without-mingle"]
        argv += ["--without-gossip", "--concurrency", str(self.config.worker_concurrency)]
        return self.start_component("celery", argv, label=label)

    def kill_component(self, label: str) -> ManagedProcess:
        """SIGKILL a component's whole process group (a crash); it is no longer required to run."""
        process = self.components[label]
        self.required.discard(label)
        process.kill()
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
        for label in self.config.triggerer_names():
            self.start_triggerer(label)
        for label in self.config.worker_names():
            self.start_celery_worker(label)
        self.wait_healthy(timeout)
        self.warm_up_execution_api(timeout)
        for label in self.config.worker_names():
            self.components[label].wait_for_log(r"\bready\.", timeout)

    def warm_up_execution_api(self, timeout: float) -> None:
        """
        Make the api-server build its execution API now rather than on the first task's call.

        It builds the versioned routes of the execution API (Cadwyn) on the first request, in its event loop:
        on a busy machine that takes long enough for the first task's calls to time out, and holds up every
        REST call meanwhile.

        :param timeout: seconds to wait for the answer.
        """
        httpx.get(f"{self.base_url}/execution/health/ping", timeout=timeout)

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
        for name in sorted(self.required):
            process = self.components[name]
            if not process.alive():
                raise RuntimeError(f"{name} exited with {process.popen.returncode}:\n{process.tail()}")

    def crash_and_restart_triggerer(self) -> tuple[ManagedProcess, ManagedProcess]:
        """Kill the triggerer's whole process group (a crash), then start a new one; return both."""
        old = self.kill_component("triggerer")
        return old, self.start_triggerer("triggerer")

    def stop(self) -> None:
        self.processes.stop_all()

    def all_log_files(self) -> list[Path]:
        """Task and trigger logs under the logs folder plus every component's own output."""
        folders = [self.logs_folder, self.component_logs]
        return sorted(p for folder in folders if folder.exists() for p in folder.rglob("*") if p.is_file())
