"""The task management API: ``GET _tasks``, ``GET _tasks/<id>``, ``POST _tasks/<id>/_cancel``.

As ``RestGetTaskAction``, ``RestListTasksAction`` and ``RestCancelTasksAction`` in elastic/elasticsearch
(server/src/main/java/org/elasticsearch/rest/action/admin/cluster/) and ``TransportGetTaskAction``: a running
task answers ``completed: false`` with its status; a finished one is read from the ``.tasks`` index, and a task
that is neither answers 404 "task [x] isn't running and hasn't stored its results".
"""

from __future__ import annotations

import fnmatch
from typing import Any

from airflow_esml.testing.api.request_values import query_bool
from airflow_esml.testing.cluster.values import parse_time
from airflow_esml.testing.docs.tasks import Task, TaskManager, parse_task_id
from airflow_esml.testing.protocol import EsError, Route, SimRequest, SimResponse

DEFAULT_WAIT_SECONDS = 30.0


class TasksApi:
    """Handlers over a :class:`~airflow_esml.testing.docs.tasks.TaskManager`."""

    endpoint_names: dict[tuple[str, str], str] = {
        ("GET", "/_tasks"): "tasks",
        ("GET", "/_tasks/{task_id}"): "task_get",
        ("POST", "/_tasks/{task_id}/_cancel"): "task_cancel",
    }

    def __init__(self, tasks: TaskManager) -> None:
        self.tasks = tasks

    def routes(self) -> list[Route]:
        handlers = {"tasks": self._list, "task_get": self._get, "task_cancel": self._cancel}
        return [(m, t, handlers[name]) for (m, t), name in self.endpoint_names.items()]

    # -- get -------------------------------------------------------------------------------------

    def _get(self, request: SimRequest) -> SimResponse:
        task_id = request.path_params["task_id"]
        parse_task_id(task_id)
        task = self.tasks.find(task_id)
        if task is not None and query_bool(request.query, "wait_for_completion", False):
            self._wait(task, task_id, request)
            task = None
        if task is not None:
            return SimResponse(200, {"completed": False, "task": self.tasks.info(task, detailed=True)})
        stored = self.tasks.stored(task_id)
        if stored is None:
            raise EsError(
                404, "resource_not_found_exception", f"task [{task_id}] isn't running and hasn't stored its results"
            )
        return SimResponse(200, stored)

    def _wait(self, task: Task, task_id: str, request: SimRequest) -> None:
        timeout = request.query.get("timeout")
        seconds = parse_time(timeout, "timeout") if timeout else DEFAULT_WAIT_SECONDS
        if not task.done.wait(seconds):
            raise EsError(408, "timeout_exception", f"Timed out waiting for completion of task [{task_id}]")

    # -- cancel ----------------------------------------------------------------------------------

    def _cancel(self, request: SimRequest) -> SimResponse:
        task_id = request.path_params["task_id"]
        node, _ = parse_task_id(task_id)
        task = self.tasks.find(task_id)
        if task is None:
            failure = {
                "type": "failed_node_exception",
                "reason": f"Failed node [{node}]",
                "node_id": node,
                "caused_by": {"type": "resource_not_found_exception", "reason": f"task [{task_id}] is not found"},
            }
            return SimResponse(200, {"node_failures": [failure], "nodes": {}})
        self.tasks.cancel(task)
        if query_bool(request.query, "wait_for_completion", False):
            task.done.wait(DEFAULT_WAIT_SECONDS)
        return SimResponse(200, self._by_node([task], detailed=False))

    # -- list ------------------------------------------------------------------------------------

    def _list(self, request: SimRequest) -> SimResponse:
        actions = [a for a in request.query.get("actions", "").split(",") if a]
        parent = request.query.get("parent_task_id")
        detailed = query_bool(request.query, "detailed", False)
        selected = [
            t
            for t in self.tasks.running()
            if (not actions or any(fnmatch.fnmatchcase(t.action, a) for a in actions))
            and (parent is None or t.parent == parent)
        ]
        group_by = request.query.get("group_by", "nodes")
        if group_by == "none":
            return SimResponse(200, {"tasks": [self.tasks.info(t, detailed=detailed) for t in selected]})
        if group_by == "parents":
            return SimResponse(200, {"tasks": self._by_parent(selected, detailed)})
        if group_by != "nodes":
            raise EsError(
                400,
                "illegal_argument_exception",
                "No enum constant org.elasticsearch.rest.action.admin.cluster.RestListTasksAction.GroupBy."
                + group_by.upper(),
            )
        return SimResponse(200, self._by_node(selected, detailed=detailed))

    def _by_parent(self, selected: list[Task], detailed: bool) -> dict[str, Any]:
        ids = {self.tasks.task_id(t) for t in selected}
        out: dict[str, Any] = {}
        for task in selected:
            if task.parent in ids:
                continue
            info = self.tasks.info(task, detailed=detailed)
            children = [self.tasks.info(c, detailed=detailed) for c in task.children if self.tasks.task_id(c) in ids]
            if children:
                info["children"] = children
            out[self.tasks.task_id(task)] = info
        return out

    def _by_node(self, selected: list[Task], *, detailed: bool) -> dict[str, Any]:
        if not selected:
            return {"nodes": {}}
        node = {
            "name": self.tasks.node_name,
            "transport_address": "127.0.0.1:9300",
            "host": "127.0.0.1",
            "ip": "127.0.0.1:9300",
            "roles": ["data", "ingest", "master", "remote_cluster_client", "transform"],
            "attributes": {"xpack.installed": "true"},
            "tasks": {self.tasks.task_id(t): self.tasks.info(t, detailed=detailed) for t in selected},
        }
        return {"nodes": {self.tasks.node_id: node}}
