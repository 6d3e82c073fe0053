"""Helpers shared by the ML API tests (real client, raw requests, cleanup)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import elasticsearch
import pytest

MODEL = "my-e5"
JSON = "application/vnd.elasticsearch+json; compatible-with=9"


def raw(
    client: elasticsearch.Elasticsearch,
    method: str,
    path: str,
    *,
    params: dict[str, Any] | None = None,
    body: Any = None,
    compat: int = 9,
) -> Any:
    """A request the typed client cannot send (query-string update, bad values, an 8.x server); returns the body."""
    media = JSON.replace("=9", f"={compat}")
    headers = {"accept": media}
    if body is not None:
        headers["content-type"] = media
    return client.perform_request(method, path, params=params, headers=headers, body=body).body


def api_error(excinfo: pytest.ExceptionInfo[elasticsearch.ApiError]) -> tuple[int, str, str]:
    """``(status, type, reason)`` of an ApiError."""
    err = excinfo.value
    return err.meta.status, err.body["error"]["type"], err.body["error"]["reason"]


def stats(client: elasticsearch.Elasticsearch, deployment_id: str) -> dict[str, Any]:
    body = client.ml.get_trained_models_stats(model_id=deployment_id).body
    [entry] = [
        e for e in body["trained_model_stats"] if e.get("deployment_stats", {}).get("deployment_id") == deployment_id
    ]
    return dict(entry["deployment_stats"])


def poll(client: elasticsearch.Elasticsearch, deployment_id: str, state: str, timeout: float = 10.0) -> dict[str, Any]:
    """Poll stats until ``allocation_status.state`` is ``state``."""
    deadline = time.monotonic() + timeout
    while True:
        current = stats(client, deployment_id)
        if current.get("allocation_status", {}).get("state") == state:
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"{deployment_id} never reached {state}: {current}")
        time.sleep(0.02)


@contextmanager
def cleanup(client: elasticsearch.Elasticsearch, *deployment_ids: str) -> Iterator[None]:
    """Force-stop the deployments afterwards (needed on a real cluster)."""
    try:
        yield
    finally:
        for dep in deployment_ids:
            client.options(ignore_status=404).ml.stop_trained_model_deployment(model_id=dep, force=True)


def wait_for_pending(cluster: Any, deployment_id: str, count: int, timeout: float = 10.0) -> None:
    """Until ``deployment_id``'s nodes hold ``count`` waiting requests: a thread that fills the queue may start
    late on a loaded machine, so a test waits for the queue instead of sleeping a guess."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        nodes = cluster.deployment_stats(deployment_id).get("nodes", [])
        if sum(n.get("number_of_pending_requests", 0) for n in nodes) >= count:
            return
        time.sleep(0.005)
    raise AssertionError(f"{count} requests never waited in the queue of {deployment_id}")
