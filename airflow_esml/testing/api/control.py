"""The simulator's ``/_sim/`` control routes, so that another process can drive a simulator it started.

**Not Elasticsearch APIs.** The fault routes (``/_sim/faults``) belong to
:class:`~airflow_esml.testing.server.faults.FaultInjector`; these drive the cluster model and read the audit log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_esml.testing.protocol import AuditLog, EsError, Route, SimRequest, SimResponse

if TYPE_CHECKING:
    from airflow_esml.testing.cluster import Cluster


class ControlApi:
    """The control handlers of one simulator.

    :param cluster: the cluster model they drive.
    :param audit: the audit log ``GET /_sim/audit`` reads.
    """

    def __init__(self, cluster: Cluster, audit: AuditLog) -> None:
        self.cluster, self.audit = cluster, audit

    def routes(self) -> list[Route]:
        return [
            ("GET", "/_sim/audit", self._get_audit),
            ("POST", "/_sim/nodes/{name}/_fail", self._post_fail_node),
            ("PUT", "/_sim/nodes/{name}", self._put_node),
            ("PUT", "/_sim/models/{model_id}", self._put_model),
            ("POST", "/_sim/_load_seconds", self._post_load_seconds),
        ]

    def _get_audit(self, request: SimRequest) -> SimResponse:
        kind = request.query.get("kind") or None
        since = float(request.query.get("since") or 0.0)
        events = [{"at": e.at, "kind": e.kind, "data": dict(e.data)} for e in self.audit.events(kind) if e.at > since]
        return SimResponse(200, {"events": _jsonable(events)})

    def _post_fail_node(self, request: SimRequest) -> SimResponse:
        body = request.body or {}
        kwargs = {"reason": str(body["reason"])} if "reason" in body else {}
        self.cluster.fail_node(request.path_params["name"], **kwargs)
        return SimResponse(200, {"acknowledged": True})

    def _put_node(self, request: SimRequest) -> SimResponse:
        body = request.body or {}
        node_id = self.cluster.add_ml_node(request.path_params["name"], int(body.get("processors", 4)))
        return SimResponse(200, {"acknowledged": True, "node_id": node_id})

    def _put_model(self, request: SimRequest) -> SimResponse:
        self.cluster.add_model(request.path_params["model_id"])
        return SimResponse(200, {"acknowledged": True})

    def _post_load_seconds(self, request: SimRequest) -> SimResponse:
        body = request.body or {}
        if "seconds" not in body:
            raise EsError(400, "illegal_argument_exception", "body needs [seconds]")
        self.cluster.set_load_seconds(float(body["seconds"]), model_id=body.get("model_id"))
        return SimResponse(200, {"acknowledged": True})


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
