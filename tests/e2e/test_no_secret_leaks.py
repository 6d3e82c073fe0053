"""After every run: the API key and every password appear in no log, XCom, rendered field or error."""

from __future__ import annotations

import pytest

from tests.e2e._airflow import AirflowStack
from tests.e2e._api import AirflowApi
from tests.e2e._scan import as_text, find_leaks, read_files
from tests.e2e._scenario import Scenario
from tests.e2e._simulator import RunningSimulator

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def api_texts(api: AirflowApi, runs: dict[str, str]) -> dict[str, str]:
    """XCom values, rendered template fields and logs of every task try, as the REST API serves them."""
    texts = {}
    for dag_id, run_id in runs.items():
        texts[f"xcom of {dag_id}"] = as_text(api.xcom_values(dag_id, run_id))
        for ti in api.task_instances(dag_id, run_id):
            where = f"{dag_id}.{ti['task_id']}"
            texts[f"rendered fields of {where}"] = as_text(ti["rendered_fields"])
            texts[f"task instance {where}"] = as_text(ti)
            for attempt in range(1, ti["try_number"] + 1):
                texts[f"API log of {where} try {attempt}"] = api.task_log(dag_id, run_id, ti["task_id"], attempt)
    return texts


def test_no_secret_in_logs_xcom_rendered_fields_or_errors(
    airflow_stack: AirflowStack, api: AirflowApi, simulator: RunningSimulator, scenario: Scenario
) -> None:
    secrets = {"Elasticsearch API key": simulator.api_key, **airflow_stack.secrets}
    files = read_files([*airflow_stack.all_log_files(), simulator.process.log_path])
    texts = {**files, **api_texts(api, scenario.all_runs)}
    # the scan saw the real material: task, trigger and component logs, and the failures' exceptions
    names = "\n".join(files)
    assert ".log.trigger." in names and "scheduler-0.log" in names and "triggerer-1.log" in names, names
    errors = "\n".join(text for source, text in texts.items() if source.startswith("API log"))
    assert "Task failed with exception" in errors and "TLS verification failed" in errors
    assert "DeploymentNotFoundError" in errors
    rendered = "\n".join(text for source, text in texts.items() if source.startswith("rendered fields"))
    assert "batch-e5" in rendered  # templates were rendered, and their output was scanned

    assert find_leaks(secrets, texts) == []
