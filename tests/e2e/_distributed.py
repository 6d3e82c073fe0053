"""
The two Airflow installations of the distributed e2e test, both pointed at one simulator:

- **A**: CeleryExecutor with Redis as broker and PostgreSQL as result backend and metadata database, two Celery
  workers (``celery-worker-1``, ``celery-worker-2``) and two triggerers (``triggerer-1``, ``triggerer-2``);
- **B**: a second installation with its own metadata database and scheduler (LocalExecutor, one triggerer).

Every worker and triggerer of A has its own host name (``[core] hostname_callable``) and its own connection
``opaque_id``, so the REST API tells which process ran a task or a trigger, and the simulator's audit log
tells which process sent a request.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.e2e._airflow import AirflowStack, StackConfig
from tests.e2e._database import MetadataDatabase
from tests.e2e._hostname import CALLABLE, HOSTNAME_ENV
from tests.e2e._simulator import RunningSimulator

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = REPO / "example_dags"

#: seconds a new allocation of the spread phase's models takes to load: how long their sensors stay deferred.
#: Long enough that a sensor that starts late on a busy machine still finds something to wait for.
LOAD_SECONDS = 45.0
#: load seconds of the second phase's models: the retry run needs no long wait; the shared runs some, to overlap
SECOND_PHASE_LOAD_SECONDS = {"retry-e5": 5.0, "shared-e5": 15.0}
#: the example DAG's ``poll_interval``: its sensors' triggers ask for one look per second
POLL_INTERVAL = 1.0
#: triggers one triggerer of A takes at most: fewer than the spread phase defers at its peak (four sensors
#: and four lease keepers), so both triggerers get some; more than its lease keepers, so one triggerer
#: alone can take over every trigger when the other dies
TRIGGERER_CAPACITY = 5
#: seconds without a heartbeat after which the scheduler fails a running task (here: its worker was killed)
TASK_HEARTBEAT_TIMEOUT = 15

SPREAD = ("spread-1", "spread-2", "spread-3", "spread-4")
RETRY = "retry-e5"
SHARED = "shared-e5"
BASELINE = 1
#: one-processor ML nodes: every added allocation is a new route that takes LOAD_SECONDS to load
SIMULATOR_ARGS = [
    *(arg for n in range(1, 13) for arg in ("--ml-node", f"ml-node-{n}:1")),
    *(arg for d in (*SPREAD, RETRY, SHARED) for arg in ("--model", d, "--deploy", f"{d}:{BASELINE}")),
    "--load-seconds", str(LOAD_SECONDS),
    "--seed", "15",
]  # fmt: skip


def python_path() -> str:
    """The repository first, so child processes load this tree's provider and ``tests.e2e._hostname``."""
    return os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)


def celery_config(home: Path, database: MetadataDatabase, simulator: RunningSimulator, broker_url: str) -> StackConfig:
    """
    Installation A: CeleryExecutor, two workers, two triggerers of limited capacity, one retry per task.

    :param home: its AIRFLOW_HOME.
    :param database: its metadata database (PostgreSQL).
    :param simulator: the shared simulator.
    :param broker_url: the Redis broker.
    """
    config = StackConfig(
        home=home,
        database=database,
        dag_folders={"example-dags": EXAMPLE_DAGS},
        executor="CeleryExecutor",
        triggerers=2,
        celery_workers=2,
        worker_concurrency=2,
        broker_url=broker_url,
        extra_env={
            "PYTHONPATH": python_path(),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": CALLABLE,
            "AIRFLOW_CONN_ELASTICSEARCH_DEFAULT": simulator.connection_json(opaque_id="install-a"),
            "AIRFLOW__TRIGGERER__CAPACITY": str(TRIGGERER_CAPACITY),
            # a task whose worker dies is failed after this long without a heartbeat, then retried once
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(TASK_HEARTBEAT_TIMEOUT),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "1",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1",
            "AIRFLOW__CORE__PARALLELISM": "8",
        },
    )
    labels = [*config.triggerer_names(), *config.worker_names()]
    config.component_env = {
        label: {
            HOSTNAME_ENV: label,
            "AIRFLOW_CONN_ELASTICSEARCH_DEFAULT": simulator.connection_json(opaque_id=label),
        }
        for label in labels
    }
    return config


def local_config(home: Path, database: MetadataDatabase, simulator: RunningSimulator) -> StackConfig:
    """
    Installation B: its own metadata database, scheduler (LocalExecutor) and triggerer.

    :param home: its AIRFLOW_HOME.
    :param database: its metadata database.
    :param simulator: the shared simulator.
    """
    return StackConfig(
        home=home,
        database=database,
        dag_folders={"example-dags": EXAMPLE_DAGS},
        extra_env={
            "PYTHONPATH": python_path(),
            "AIRFLOW_CONN_ELASTICSEARCH_DEFAULT": simulator.connection_json(opaque_id="install-b"),
        },
    )


def start_quietly(stack: AirflowStack, errors: list[BaseException]) -> None:
    """Start a stack from a thread, keeping what went wrong for the main thread."""
    try:
        stack.start()
    except BaseException as exc:
        errors.append(exc)
