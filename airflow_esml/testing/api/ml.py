"""HTTP handlers of the ML trained-model endpoints, ``_nodes``, ``_ml/info`` and ``_cluster/settings``.

Each handler parses a :class:`SimRequest` the way the simulated Elasticsearch version does, calls the
:class:`Cluster` and returns a :class:`SimResponse`; errors are raised as :class:`EsError`. The
simulator binds one :class:`MlApi` to its cluster and adds :meth:`MlApi.routes` to its router.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_esml.testing.api import ml_reads
from airflow_esml.testing.api.ml_params import parse_start, parse_stop, parse_update
from airflow_esml.testing.api.request_values import parse_bool, query_bool, query_int, unrecognized_params
from airflow_esml.testing.cluster.values import bad_request, parse_time
from airflow_esml.testing.protocol import EsError, Route, SimRequest, SimResponse

if TYPE_CHECKING:
    from airflow_esml.testing.cluster import Cluster

_TM = "/_ml/trained_models"
_GET_PARAMS = {"allow_no_match", "decompress_definition", "exclude_generated", "from", "size", "include", "tags"}
_NODE_METRICS = {
    "_all",
    "settings",
    "os",
    "process",
    "jvm",
    "thread_pool",
    "transport",
    "http",
    "plugins",
    "ingest",
    "aggregations",
    "indices",
    "remote_cluster_server",
}
_INCLUDES = {
    "definition",
    "definition_status",
    "feature_importance_baseline",
    "hyperparameters",
    "total_feature_importance",
}


class MlApi:
    """The handlers, bound to one cluster.

    :param cluster: the cluster model.
    """

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def routes(self) -> list[Route]:
        return [
            ("POST", f"{_TM}/{{model_id}}/deployment/_start", self.start),
            ("POST", f"{_TM}/{{model_id}}/deployment/_stop", self.stop),
            ("POST", f"{_TM}/{{model_id}}/deployment/_update", self.update),
            ("POST", f"{_TM}/{{model_id}}/deployment/cache/_clear", self.clear_cache),
            ("POST", f"{_TM}/{{model_id}}/_infer", self.infer),
            ("POST", f"{_TM}/{{model_id}}/deployment/_infer", self.infer_deprecated),
            ("GET", f"{_TM}/_stats", self.stats),
            ("GET", f"{_TM}/{{model_id}}/_stats", self.stats),
            ("GET", _TM, self.get),
            ("GET", f"{_TM}/{{model_id}}", self.get),
            ("GET", "/_nodes", self.nodes),
            ("GET", "/_nodes/{node_id}", self.nodes),
            ("GET", "/_nodes/{node_id}/{metric}", self.nodes),
            ("GET", "/_ml/info", self.info),
            ("GET", "/_cluster/settings", self.cluster_settings),
        ]

    # -- deployment lifecycle ------------------------------------------------------------------

    def start(self, request: SimRequest) -> SimResponse:
        params = parse_start(request, self.cluster.version)
        params.validate()
        dep_id = self.cluster.start(params)
        assignment = self.cluster.wait_started(dep_id, params.wait_for, params.timeout)
        return SimResponse(200, {"assignment": assignment})

    def stop(self, request: SimRequest) -> SimResponse:
        allow_no_match, force = parse_stop(request)
        body = self.cluster.stop(request.path_params["model_id"], force=force, allow_no_match=allow_no_match)
        return SimResponse(200, body)

    def update(self, request: SimRequest) -> SimResponse:
        params = parse_update(request, self.cluster.version)
        assignment = self.cluster.update(request.path_params["model_id"], params)
        return SimResponse(200, {"assignment": assignment})

    def clear_cache(self, request: SimRequest) -> SimResponse:
        unrecognized_params(request.path, request.query, set())
        self.cluster.clear_cache(request.path_params["model_id"])
        return SimResponse(200, {"cleared": True})

    # -- inference -----------------------------------------------------------------------------

    def _infer_args(self, request: SimRequest) -> tuple[list[dict[str, Any]], float]:
        unrecognized_params(request.path, request.query, {"timeout"})
        timeout = parse_time(request.query.get("timeout", "10s"), "timeout")
        body = request.body
        if not isinstance(body, dict) or "docs" not in body:
            raise bad_request("x_content_parse_exception", "[1:2] Required [docs]")
        unknown = [k for k in body if k not in ("docs", "inference_config")]
        if unknown:
            raise bad_request(
                "x_content_parse_exception", f"[1:2] [infer_trained_model_request] unknown field [{unknown[0]}]"
            )
        docs = body["docs"]
        if not isinstance(docs, list) or not all(isinstance(d, dict) for d in docs):
            raise bad_request(
                "x_content_parse_exception", "[1:9] [infer_trained_model_request] failed to parse field [docs]"
            )
        return docs, timeout

    def infer(self, request: SimRequest) -> SimResponse:
        docs, timeout = self._infer_args(request)
        results = self.cluster.infer(request.path_params["model_id"], docs, timeout)
        return SimResponse(200, {"inference_results": results})

    def infer_deprecated(self, request: SimRequest) -> SimResponse:
        docs, timeout = self._infer_args(request)
        if len(docs) > 1:
            raise bad_request("illegal_argument_exception", "multiple documents are not supported")
        results = self.cluster.infer(request.path_params["model_id"], docs, timeout)
        return SimResponse(200, results[0] if results else {})

    # -- reads ---------------------------------------------------------------------------------

    def stats(self, request: SimRequest) -> SimResponse:
        unrecognized_params(request.path, request.query, {"allow_no_match", "from", "size"})
        allow, from_, size = self._paging(request)
        with self.cluster.lock:
            body = ml_reads.model_stats(
                self.cluster, request.path_params.get("model_id"), allow, from_, size, _human(request)
            )
        return SimResponse(200, body)

    def get(self, request: SimRequest) -> SimResponse:
        if request.path_params.get("model_id") == "_stats":
            return self.stats(
                SimRequest(request.method, request.path, {}, request.query, request.body, request.headers)
            )
        unrecognized_params(request.path, request.query, _GET_PARAMS)
        allow, from_, size = self._paging(request)
        for key in ("decompress_definition", "exclude_generated"):
            query_bool(request.query, key, False)
        include = {i.strip() for i in request.query.get("include", "").split(",") if i.strip()}
        for item in include - _INCLUDES:
            raise bad_request(
                "illegal_argument_exception",
                f"unknown [include] parameter [{item}]. Valid options are {sorted(_INCLUDES)}",
            )
        with self.cluster.lock:
            body = ml_reads.model_configs(
                self.cluster, request.path_params.get("model_id"), allow, from_, size, include
            )
        return SimResponse(200, body)

    @staticmethod
    def _paging(request: SimRequest) -> tuple[bool, int, int]:
        allow = query_bool(request.query, "allow_no_match", True)
        from_ = query_int(request.query, "from") or 0
        size = query_int(request.query, "size")
        size = 100 if size is None else size
        if from_ < 0 or size < 0:
            name = "from" if from_ < 0 else "size"
            raise bad_request("illegal_argument_exception", f"Parameter [{name}] cannot be < 0")
        if from_ + size > 10000:
            raise bad_request("illegal_argument_exception", "Parameter [from] + [size] cannot be > 10000")
        return allow, from_, size

    def nodes(self, request: SimRequest) -> SimResponse:
        with self.cluster.lock:
            self.cluster._advance()
            selector = request.path_params.get("node_id")
            if selector is not None and set(selector.split(",")) <= _NODE_METRICS:
                selector = None
            body = ml_reads.nodes_info(self.cluster, selector)
        return SimResponse(200, body)

    def info(self, request: SimRequest) -> SimResponse:
        unrecognized_params(request.path, request.query, set())
        with self.cluster.lock:
            self.cluster._advance()
            body = ml_reads.ml_info(self.cluster)
        return SimResponse(200, body)

    def cluster_settings(self, request: SimRequest) -> SimResponse:
        """The ML autoscaling settings only (assumption: an autoscaling cluster has them set persistently,
        as Elastic Cloud does; other settings are not simulated). Flat keys, whatever ``flat_settings`` says."""
        with self.cluster.lock:
            self.cluster._advance()
            nodes = len(self.cluster.nodes)
            autoscale = self.cluster.autoscale
        lazy = {"xpack.ml.max_lazy_ml_nodes": str(nodes + 8)} if autoscale else {}
        body: dict[str, Any] = {"persistent": lazy, "transient": {}}
        if parse_bool(request.query.get("include_defaults", "false")):
            body["defaults"] = {"xpack.ml.max_lazy_ml_nodes": "0", "xpack.ml.max_ml_node_size": "0b"}
        return SimResponse(200, body)


def _human(request: SimRequest) -> bool:
    try:
        return parse_bool(request.query["human"]) if "human" in request.query else False
    except EsError:
        return False
