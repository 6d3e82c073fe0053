"""What the simulator saw, read over HTTPS from the test process: its audit log and the lease documents."""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import quote

import httpx

from airflow_esml.core.params import DEFAULT_LEASES_INDEX
from tests.e2e._simulator import RunningSimulator


class ClusterView:
    """
    Read-only looks at a running simulator (its ``/_sim/audit`` control endpoint and the documents API).

    :param simulator: the simulator process.
    """

    def __init__(self, simulator: RunningSimulator) -> None:
        context = ssl.create_default_context(cafile=str(simulator.ca_file))
        self.client = httpx.Client(
            base_url=simulator.url,
            verify=context,
            headers={"Authorization": f"ApiKey {simulator.api_key}"},
            timeout=30,
        )

    def close(self) -> None:
        self.client.close()

    def audit(self, kind: str, since: float | None = None) -> list[dict[str, Any]]:
        """
        Audit events of one kind, oldest first: ``{"at": wall time, "kind", "data"}``.

        :param kind: e.g. ``request`` or ``target_changed``.
        :param since: only events after this wall-clock time.
        """
        params: dict[str, Any] = {"kind": kind}
        if since is not None:
            params["since"] = since
        response = self.client.get("/_sim/audit", params=params)
        response.raise_for_status()
        return list(response.json()["events"])

    def requests(self, since: float | None = None, **match: Any) -> list[dict[str, Any]]:
        """
        ``request`` events whose data has every ``match`` value (e.g. ``opaque_id="triggerer-1"``).

        :param since: only events after this wall-clock time.
        :param match: data field -> required value.
        """
        events = self.audit("request", since)
        return [e for e in events if all(e["data"].get(k) == v for k, v in match.items())]

    def target_history(self, deployment_id: str) -> list[tuple[float, int]]:
        """``(wall time, target)`` for each change of the deployment's number of allocations, boot included."""
        return [
            (float(e["at"]), int(e["data"]["new"]))
            for e in self.audit("target_changed")
            if e["data"].get("deployment_id") == deployment_id
        ]

    def lease_document(self, deployment_id: str) -> dict[str, Any] | None:
        """
        The deployment's lease document (``_source``), or None when there is none.

        :param deployment_id: the deployment.
        """
        response = self.client.get(f"/{DEFAULT_LEASES_INDEX}/_doc/{quote(deployment_id, safe='')}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return dict(response.json()["_source"])

    def set_load_seconds(self, model_id: str, seconds: float) -> None:
        """
        How long a new allocation of one model takes to load from now on.

        :param model_id: the model.
        :param seconds: the load time.
        """
        response = self.client.post("/_sim/_load_seconds", json={"seconds": seconds, "model_id": model_id})
        response.raise_for_status()
