"""Fixtures of the end-to-end tests: the simulator, then a multi-process Airflow pointed at it."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from tests.e2e._airflow import AirflowStack, StackConfig
from tests.e2e._api import AirflowApi
from tests.e2e._database import DATABASE_URL_ENV, provision
from tests.e2e._procs import ProcessSet
from tests.e2e._scenario import Scenario, run_scenario
from tests.e2e._simulator import RunningSimulator, simulator_available, start_simulator

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DAGS = REPO / "example_dags"
E2E_DAGS = Path(__file__).resolve().parent / "dags"

#: Seconds an allocation takes to load in the simulator: the window in which sensors are deferred. Long enough
#: that a sensor queued behind the other DAGs' tasks (parallelism 4 on 2 cores) still finds something to wait for.
LOAD_SECONDS = float(os.environ.get("ESML_E2E_LOAD_SECONDS", "20"))
#: The simulator's cluster: every DAG works on its own model. ML nodes have one processor each, so every
#: added allocation needs a new route on another node, which takes LOAD_SECONDS to load (growing a route
#: that exists is almost instant): the sensors have something to wait for, in the triggerer.
SIMULATOR_ARGS = [
    *(arg for n in range(1, 11) for arg in ("--ml-node", f"ml-node-{n}:1")),
    "--model", "my-e5", "--deploy", "my-e5:1",
    "--model", "batch-e5", "--deploy", "batch-e5:1",
    "--model", "hours-e5", "--deploy", "hours-e5:1",
    "--model", "e2e-model", "--deploy", "e2e-model:1",
    "--load-seconds", str(LOAD_SECONDS),
    "--seed", "5",
]  # fmt: skip


#: the connection of dags/e2e_kibana_link.py: the simulator, with a ``kibana_url`` extra (test_browser.py)
KIBANA_CONN_ID = "esml_kibana"
KIBANA_URL = "https://kibana.example.com:5601"


def other_ca(folder: Path) -> Path:
    """A CA certificate that did not sign the simulator's server certificate."""
    from airflow_esml.testing.server.tls import write_tls_files

    write_tls_files(folder / "other-ca")
    return folder / "other-ca" / "ca.crt"


def example_dag_files() -> list[Path]:
    return sorted(p for p in EXAMPLE_DAGS.glob("*.py") if not p.name.startswith("_"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """
    The distributed scenario first: its module-scoped stacks are stopped before the package's LocalExecutor
    stack starts, so the two never run at once.
    """
    first = [item for item in items if item.path.name == "test_distributed.py"]
    rest = [item for item in items if item.path.name != "test_distributed.py"]
    here = Path(__file__).resolve().parent
    at = next((n for n, item in enumerate(rest) if here in item.path.resolve().parents), len(rest))
    items[:] = [*rest[:at], *first, *rest[at:]]


def _interrupt_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="package")
def e2e_processes() -> Iterator[ProcessSet]:
    """
    Every process the e2e tests start; all stopped at the end, also after a failure.

    SIGTERM to pytest (a CI time limit, say) becomes a KeyboardInterrupt, so the fixtures' teardown still
    stops the child process groups, which would otherwise outlive pytest in their own sessions.
    """
    processes = ProcessSet()
    previous = signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    try:
        yield processes
    finally:
        try:
            processes.stop_all()
        finally:
            signal.signal(signal.SIGTERM, previous)


@pytest.fixture(scope="package")
def e2e_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("airflow-e2e")


@pytest.fixture(scope="package")
def simulator(e2e_processes: ProcessSet, e2e_home: Path) -> RunningSimulator:
    if not simulator_available():
        pytest.skip("airflow_esml.testing.simulator is not available")
    return start_simulator(e2e_processes, e2e_home, SIMULATOR_ARGS)


@pytest.fixture(scope="package")
def airflow_stack(e2e_home: Path, simulator: RunningSimulator) -> Iterator[AirflowStack]:
    """Airflow's api-server, scheduler, dag-processor and triggerer, with the simulator as connection."""
    home = e2e_home / "airflow-home"
    home.mkdir()
    with provision(e2e_home) as database:
        if os.environ.get(DATABASE_URL_ENV) and os.environ.get("CI") and database.backend != "postgresql":
            pytest.fail(f"{DATABASE_URL_ENV} is set in CI but PostgreSQL is unreachable")
        config = StackConfig(
            home=home,
            database=database,
            dag_folders={"example-dags": EXAMPLE_DAGS, "e2e-dags": E2E_DAGS},
            extra_env={
                "AIRFLOW_CONN_ELASTICSEARCH_DEFAULT": simulator.connection_json(),
                "AIRFLOW_CONN_ESML_NO_VERIFY": simulator.connection_json(verify_certs=False, ca_certs=None),
                "AIRFLOW_CONN_ESML_WRONG_CA": simulator.connection_json(ca_certs=str(other_ca(e2e_home))),
                "ESML_E2E_PROBE_WAIT": "25",
                f"AIRFLOW_CONN_{KIBANA_CONN_ID.upper()}": simulator.connection_json(kibana_url=KIBANA_URL),
                # the UI's Test button on a connection (test_browser.py); Airflow disables it by default
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            },
        )
        stack = AirflowStack(config)
        try:
            stack.start()
            yield stack
        except BaseException:
            for process in stack.processes.processes:
                print(f"----- {process.name} ({process.log_path}) -----\n{process.tail(60)}")
            raise
        finally:
            stack.stop()


@pytest.fixture(scope="package")
def api(airflow_stack: AirflowStack) -> Iterator[AirflowApi]:
    from tests.e2e._airflow import ADMIN_USER

    client = AirflowApi(airflow_stack.base_url, ADMIN_USER, airflow_stack.admin_password)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="package")
def scenario(airflow_stack: AirflowStack, api: AirflowApi) -> Scenario:
    """Every DAG run of the e2e tests, with the triggerer crashed under a deferred sensor in each phase."""
    try:
        return run_scenario(airflow_stack, api)
    except BaseException:
        for process in airflow_stack.processes.processes:
            print(f"----- {process.name} ({process.log_path}) -----\n{process.tail(40)}")
        raise
