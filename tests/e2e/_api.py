"""A small client for Airflow's REST API v2, authenticated the way a script would be (JWT from /auth/token)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

TERMINAL_RUN_STATES = frozenset({"success", "failed"})


class AirflowApi:
    """
    REST API v2 client for one Airflow deployment.

    :param base_url: e.g. ``http://127.0.0.1:8080``.
    :param username: a simple-auth-manager user.
    :param password: that user's password.
    """

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base_url = base_url
        token = self._token(username, password)
        self.client = httpx.Client(
            base_url=f"{base_url}/api/v2", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def _token(self, username: str, password: str) -> str:
        response = httpx.post(
            f"{self.base_url}/auth/token", json={"username": username, "password": password}, timeout=30
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def close(self) -> None:
        self.client.close()

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params)
        response.raise_for_status()
        return response.json()

    @staticmethod
    def run_path(dag_id: str, run_id: str) -> str:
        return f"/dags/{quote(dag_id, safe='')}/dagRuns/{quote(run_id, safe='')}"

    def wait_for_dag(self, dag_id: str, timeout: float) -> dict[str, Any]:
        """
        Wait until the dag-processor has serialised a DAG and the API serves it.

        :param dag_id: the DAG.
        :param timeout: seconds to wait.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self.client.get(f"/dags/{quote(dag_id, safe='')}")
            if response.status_code == 200:
                return dict(response.json())
            time.sleep(1)
        errors = self.client.get("/importErrors").json()
        raise TimeoutError(f"DAG {dag_id} not parsed after {timeout:.0f}s; import errors: {errors}")

    def unpause(self, dag_id: str) -> None:
        response = self.client.patch(f"/dags/{quote(dag_id, safe='')}", json={"is_paused": False})
        response.raise_for_status()
        assert response.json()["is_paused"] is False

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None, run_id: str | None = None) -> str:
        """
        Trigger a DAG run now; return its run id.

        :param dag_id: the DAG.
        :param conf: the run's ``conf``.
        :param run_id: the run's id (default: Airflow's ``manual__<time>``).
        """
        body: dict[str, Any] = {"logical_date": None, "conf": conf or {}}
        if run_id is not None:
            body["dag_run_id"] = run_id
        response = self.client.post(f"/dags/{quote(dag_id, safe='')}/dagRuns", json=body)
        response.raise_for_status()
        return str(response.json()["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        return str(self.get(self.run_path(dag_id, run_id))["state"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return list(self.get(f"{self.run_path(dag_id, run_id)}/taskInstances")["task_instances"])

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return dict(self.get(f"{self.run_path(dag_id, run_id)}/taskInstances/{quote(task_id, safe='')}"))

    def tries(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        path = f"{self.run_path(dag_id, run_id)}/taskInstances/{quote(task_id, safe='')}/tries"
        return list(self.get(path)["task_instances"])

    def pool(self, name: str = "default_pool") -> dict[str, Any]:
        return dict(self.get(f"/pools/{quote(name, safe='')}"))

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
        """
        Poll ``check`` until it returns something truthy.

        :param what: description for the timeout message.
        :param check: the probe.
        :param timeout: seconds to wait.
        :param interval: seconds between probes.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = check()
            if result:
                return result
            time.sleep(interval)
        raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        """
        Wait for a run to finish; return its final state.

        :param dag_id: the DAG.
        :param run_id: the run.
        :param timeout: seconds to wait.
        """

        def finished() -> str | None:
            state = self.run_state(dag_id, run_id)
            return state if state in TERMINAL_RUN_STATES else None

        return str(self.wait_for(f"run {dag_id}/{run_id} to finish", finished, timeout, interval=1))

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> str:
        """The task's log for one try as the API serves it (task and trigger logs merged), as NDJSON."""
        path = f"{self.run_path(dag_id, run_id)}/taskInstances/{quote(task_id, safe='')}/logs/{try_number}"
        response = self.client.get(path, params={"full_content": True}, headers={"Accept": "application/x-ndjson"})
        response.raise_for_status()
        return response.text

    def xcom_values(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """Every XCom entry of a run, ``"task_id/key" -> value`` as stored (not deserialised)."""
        entries = self.get(f"{self.run_path(dag_id, run_id)}/taskInstances/~/xcomEntries", limit=100)
        values: dict[str, Any] = {}
        for entry in entries["xcom_entries"]:
            task_path = f"{self.run_path(dag_id, run_id)}/taskInstances/{quote(entry['task_id'], safe='')}"
            item = self.get(f"{task_path}/xcomEntries/{quote(entry['key'], safe='')}", map_index=-1)
            values[f"{entry['task_id']}/{entry['key']}"] = item["value"]
        return values
