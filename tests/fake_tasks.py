"""A fake of ElasticsearchTasksHook: Elasticsearch tasks that advance one batch per look."""

from __future__ import annotations

from typing import Any

from airflow_esml.core.status import DeploymentStatus
from airflow_esml.exceptions import IndexTaskNotFoundError


def status(allocations: int = 4, threads: int = 1, queue: int | None = 1024) -> DeploymentStatus:
    return DeploymentStatus(
        "my-e5", "my-e5", "started", allocations, allocations, "fully_allocated",
        threads_per_allocation=threads, queue_capacity=queue,
    )  # fmt: skip


class FakeTask:
    def __init__(self, total: int, per_look: int, failures: list[dict] | None = None) -> None:
        self.total, self.per_look, self.done, self.looks = total, per_look, 0, 0
        self.failures = failures or []
        self.cancelled = False

    def body(self) -> dict[str, Any]:
        self.looks += 1
        if not self.cancelled:
            self.done = min(self.total, self.done + self.per_look)
        completed = self.cancelled or self.done >= self.total
        counts = {"total": self.total, "created": self.done, "updated": 0, "batches": self.looks}
        task = {"status": counts, "running_time_in_nanos": self.looks * 10**9, "cancelled": self.cancelled}
        if not completed:
            return {"completed": False, "task": task}
        response = {**counts, "failures": self.failures}
        if self.cancelled:
            response["canceled"] = "by user request"
        return {"completed": True, "task": task, "response": response}


class FakeTasksHook:
    kibana_url = None

    def __init__(self, deployment: DeploymentStatus | None = None, total: int = 100, per_look: int = 40,
                 failures: list[dict] | None = None) -> None:  # fmt: skip
        self.deployment = deployment or status()
        self.total, self.per_look, self.failures = total, per_look, failures
        self.tasks: dict[str, FakeTask] = {}
        self.records: dict[str, dict] = {}
        self.calls: list[tuple[str, dict]] = []

    def get_deployment(self, deployment_id: str, **_: Any) -> DeploymentStatus:
        return self.deployment

    def _new(self, kind: str, kwargs: dict) -> str:
        self.calls.append((kind, kwargs))
        task_id = f"node-1:{len(self.tasks) + 1}"
        self.tasks[task_id] = FakeTask(self.total, self.per_look, self.failures)
        return task_id

    def start_reindex(self, **kwargs: Any) -> str:
        return self._new("reindex", kwargs)

    def start_update_by_query(self, index: str, **kwargs: Any) -> str:
        return self._new("update_by_query", {"index": index, **kwargs})

    def get_task(self, task_id: str, **_: Any) -> dict[str, Any]:
        if task_id not in self.tasks:
            raise IndexTaskNotFoundError(f"task {task_id}: 404")
        return self.tasks[task_id].body()

    async def aget_task(self, task_id: str, **kwargs: Any) -> dict[str, Any]:
        return self.get_task(task_id, **kwargs)

    def cancel_task(self, task_id: str) -> dict[str, Any]:
        self.calls.append(("cancel", {"task_id": task_id}))
        self.tasks[task_id].cancelled = True
        return {"nodes": {}}

    def remember_task(self, index: str, key: str, record: dict) -> None:
        self.records[key] = dict(record)

    def recall_task(self, index: str, key: str) -> dict | None:
        return self.records.get(key)

    def starts(self) -> int:
        return sum(1 for kind, _ in self.calls if kind in ("reindex", "update_by_query"))

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass
