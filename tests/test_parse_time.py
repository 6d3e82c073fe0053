"""What a DAG file pays at parse time: the operator and sensor modules load neither the client nor the work."""

from __future__ import annotations

import json
import subprocess
import sys

DAG_FACING = (
    "airflow_esml.operators.deployment",
    "airflow_esml.sensors.deployment",
    "airflow_esml.operators.inference",
    "airflow_esml.operators.lease",
    "airflow_esml.lifecycle",
)
#: loaded only when a task runs: the client, the hook, and the modules that plan, wait and decide
WORK_TIME = (
    "elasticsearch",
    "airflow_esml.hooks.ml",
    "airflow_esml.plan",
    "airflow_esml.readiness",
    "airflow_esml.status",
    "airflow_esml.waiting",
    "airflow_esml.triggers.deployment",
    "airflow_esml.capacity",
    "airflow_esml.steps",
    "airflow_esml.metrics",
    "airflow_esml.leases",
    "airflow_esml.lease_store",
)


def test_importing_operators_and_sensors_loads_no_work_time_module() -> None:
    code = f"import json, sys\nfor m in {DAG_FACING!r}: __import__(m)\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    assert set(DAG_FACING) <= loaded
    assert sorted(loaded & set(WORK_TIME)) == []
