"""Crash the triggerer while a chosen task is deferred, and find out who ran its trigger."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e._airflow import AirflowStack
from tests.e2e._procs import ManagedProcess
from tests.e2e._watch import RunWatch


@dataclass
class TriggererCrash:
    """
    A ``watch_runs`` callback: once ``task_id`` of ``dag_id`` is deferred and its trigger is running in a
    triggerer (the REST API names the triggerer job, and that job has written the trigger's log), SIGKILL
    that triggerer's process group and start a new triggerer.

    :param stack: the Airflow stack.
    :param dag_id: the DAG of the task to watch.
    :param task_id: the deferrable task.
    """

    stack: AirflowStack
    dag_id: str
    task_id: str
    crashed: ManagedProcess | None = None
    replacement: ManagedProcess | None = None
    crashed_job_ids: set[int] = field(default_factory=set)

    def __call__(self, watch: RunWatch) -> None:
        if self.crashed is not None:
            return
        jobs = watch.triggerer_jobs.get((self.dag_id, self.task_id), set())
        logs = trigger_log_files(self.stack.logs_folder, self.dag_id, self.task_id)
        running_in = {job for job in jobs if job in logs and "starting" in logs[job].read_text()}
        if running_in:
            self.crashed_job_ids = running_in
            self.crashed, self.replacement = self.stack.crash_and_restart_triggerer()


def trigger_log_files(logs_folder: Path, dag_id: str, task_id: str) -> dict[int, Path]:
    """
    The trigger logs of a task, keyed by the id of the triggerer job that wrote them.

    Airflow 3 writes them next to the task log as ``attempt=N.log.trigger.<triggerer job id>.log``.
    """
    found = {}
    for path in (logs_folder / f"dag_id={dag_id}").glob(f"run_id=*/task_id={task_id}/attempt=*.log.trigger.*.log"):
        match = re.search(r"\.log\.trigger\.(\d+)\.log$", path.name)
        if match:
            found[int(match.group(1))] = path
    return found
