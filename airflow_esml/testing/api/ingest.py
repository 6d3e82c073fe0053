"""``PUT/GET/DELETE _ingest/pipeline/<id>`` over a :class:`~airflow_esml.testing.docs.pipelines.PipelineStore`."""

from __future__ import annotations

from airflow_esml.testing.docs.pipelines import PipelineStore
from airflow_esml.testing.protocol import EsError, Route, SimRequest, SimResponse


class IngestApi:
    """The ingest pipeline handlers."""

    endpoint_names: dict[tuple[str, str], str] = {
        ("PUT", "/_ingest/pipeline/{id}"): "pipeline_put",
        ("GET", "/_ingest/pipeline/{id}"): "pipeline_get",
        ("GET", "/_ingest/pipeline"): "pipeline_get",
        ("DELETE", "/_ingest/pipeline/{id}"): "pipeline_delete",
    }

    def __init__(self, pipelines: PipelineStore) -> None:
        self.pipelines = pipelines

    def routes(self) -> list[Route]:
        handlers = {"pipeline_put": self._put, "pipeline_get": self._get, "pipeline_delete": self._delete}
        return [(m, t, handlers[name]) for (m, t), name in self.endpoint_names.items()]

    def _put(self, request: SimRequest) -> SimResponse:
        if not isinstance(request.body, dict):
            raise EsError(400, "parse_exception", "request body is required")
        self.pipelines.put(request.path_params["id"], request.body)
        return SimResponse(200, {"acknowledged": True})

    def _get(self, request: SimRequest) -> SimResponse:
        raw = request.path_params.get("id")
        ids = None if raw in (None, "*", "_all") else str(raw).split(",")
        found = self.pipelines.get(ids)
        return SimResponse(200 if found or ids is None else 404, found)

    def _delete(self, request: SimRequest) -> SimResponse:
        pipeline_id = request.path_params["id"]
        if not self.pipelines.delete(pipeline_id):
            raise EsError(404, "resource_not_found_exception", f"pipeline [{pipeline_id}] is missing")
        return SimResponse(200, {"acknowledged": True})
