"""The embeddable simulator (:class:`Simulator`) and its command line.

``python -m airflow_esml.testing.simulator --help`` lists the flags.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from airflow_esml.testing.cluster import Cluster
from airflow_esml.testing.documents import DocumentStore
from airflow_esml.testing.faults import Fault, FaultInjector
from airflow_esml.testing.protocol import AuditLog, EsError, EsVersion, Route, SimRequest, SimResponse
from airflow_esml.testing.server import Router, SimApp, SimHTTPServer
from airflow_esml.testing.tls import Authenticator, TlsFiles, write_tls_files

if TYPE_CHECKING:
    import elasticsearch

log = logging.getLogger(__name__)

DEFAULT_ML_NODES: Mapping[str, int] = {"ml-node-1": 4, "ml-node-2": 4}

_LUCENE = {8: "9.10.0", 9: "10.2.2"}
_MIN_WIRE = {8: ("7.17.0", "7.0.0"), 9: ("8.19.0", "8.0.0")}


def cluster_info(version: EsVersion, cluster_uuid: str) -> dict[str, Any]:
    """The body of ``GET /`` for ``version`` (Lucene and wire versions approximate)."""
    wire, index = _MIN_WIRE.get(version.major, ("8.19.0", "8.0.0"))
    return {
        "name": "sim-node-1",
        "cluster_name": "esml-simulator",
        "cluster_uuid": cluster_uuid,
        "version": {
            "number": str(version),
            "build_flavor": "default",
            "build_type": "docker",
            "build_hash": "0000000000000000000000000000000000000000",
            "build_date": "2026-01-01T00:00:00.000000000Z",
            "build_snapshot": False,
            "lucene_version": _LUCENE.get(version.major, "10.2.2"),
            "minimum_wire_compatibility_version": wire,
            "minimum_index_compatibility_version": index,
        },
        "tagline": "You Know, for Search",
    }


class Simulator:
    """An Elasticsearch ML cluster simulator on a loopback HTTP(S) port.

    :param ml_nodes: ML node name -> allocated processors (default two 4-processor nodes).
    :param models: PyTorch model ids to create.
    :param load_seconds: seconds a new allocation takes to load (``starting`` -> ``started``).
    :param es_version: simulated Elasticsearch version (8.13 to 9.x).
    :param autoscale: behave like an autoscaling cluster (add ML nodes instead of answering 429).
    :param api_key: require this API key (``Authorization: ApiKey ...``).
    :param basic_auth: require these basic-auth credentials (either credential is accepted when both are set).
    :param tls_dir: serve HTTPS; the CA (``ca.crt``) and server certificate are written here.
    :param seed: seed of every random choice (faults, cluster), for reproducible runs.
    :param host: loopback address to listen on.
    :param port: port to listen on; 0 picks a free port.
    :param infer_seconds_per_doc: simulated inference time per document.
    """

    def __init__(
        self,
        *,
        ml_nodes: Mapping[str, int] | None = None,
        models: Iterable[str] = ("my-e5",),
        load_seconds: float = 0.5,
        es_version: str = "9.5.1",
        autoscale: bool = False,
        api_key: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        tls_dir: str | os.PathLike[str] | None = None,
        seed: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        infer_seconds_per_doc: float = 0.005,
    ) -> None:
        self.version = EsVersion.parse(es_version)
        if self.version < EsVersion(8, 13) or self.version.major > 9:
            raise ValueError(f"es_version must be between 8.13 and 9.x, got {es_version}")
        self._host, self._port = host, port
        self._api_key, self._basic_auth = api_key, basic_auth
        self._tls_dir = tls_dir
        self.audit = AuditLog()
        self.cluster = Cluster(
            version=self.version,
            audit=self.audit,
            load_seconds=load_seconds,
            autoscale=autoscale,
            infer_seconds_per_doc=infer_seconds_per_doc,
            rng=random.Random(None if seed is None else f"{seed}:cluster"),
        )
        for name, processors in (DEFAULT_ML_NODES if ml_nodes is None else ml_nodes).items():
            self.cluster.add_ml_node(name, processors)
        for model_id in models:
            self.cluster.add_model(model_id)
        self.documents = DocumentStore(audit=self.audit)
        self.faults = FaultInjector(rng=random.Random(None if seed is None else f"{seed}:faults"), audit=self.audit)
        self._uuid = str(uuid.UUID(int=random.Random(seed).getrandbits(128))) if seed is not None else str(uuid.uuid4())
        self._stopping = threading.Event()
        self._server: SimHTTPServer | None = None
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.tls: TlsFiles | None = None
        self.url = ""

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def ca_certs(self) -> str | None:
        """Path of the CA certificate (PEM) when TLS is on."""
        return self.tls.ca_cert if self.tls else None

    def _router(self) -> Router:
        router = Router()
        router.add("GET", "/", lambda r: SimResponse(200, cluster_info(self.version, self._uuid)), name="info")
        router.add("HEAD", "/", lambda r: SimResponse(200, None), name="ping")
        router.add_all(self.cluster.routes())
        for method, template, handler in self.documents.routes():
            router.add(method, template, handler, name=self.documents.endpoint_names[(method, template)])
        for method, template, handler in [*self.faults.routes(), *self._control_routes()]:
            router.add(method, template, handler, name="sim", control=True)
        return router

    def start(self) -> Simulator:
        """Start serving; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("simulator already started")
        if self._stopped:
            raise RuntimeError("a stopped simulator cannot be restarted; create a new Simulator")
        self.tls = write_tls_files(self._tls_dir) if self._tls_dir is not None else None
        auth = None
        if self._api_key is not None or self._basic_auth is not None:
            auth = Authenticator(api_key=self._api_key, basic_auth=self._basic_auth)
        app = SimApp(
            router=self._router(),
            audit=self.audit,
            version=self.version,
            auth=auth,
            faults=self.faults,
            stopping=self._stopping,
        )
        self._stopping.clear()
        server = SimHTTPServer((self._host, self._port), app, self.tls.server_context() if self.tls else None)
        self._server = server
        port = server.server_address[1]
        self.url = f"{'https' if self.tls else 'http'}://{self._host}:{port}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"esml-sim-{port}", daemon=True
        )
        self._thread.start()
        log.info("simulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving and join every thread the server started (idle keep-alive connections too)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        if thread is not None:
            thread.join()
        server.close_connections()
        self.cluster.close()  # wakes handler threads waiting inside the cluster model
        server.server_close()
        self._server = self._thread = None
        self._stopped = True

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- clients ---------------------------------------------------------------------------------

    def _client_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if not self.url:
            raise RuntimeError("start the simulator first")
        options: dict[str, Any] = {}
        if self._api_key is not None:
            options["api_key"] = self._api_key
        elif self._basic_auth is not None:
            options["basic_auth"] = self._basic_auth
        if self.ca_certs:
            options["ca_certs"] = self.ca_certs
        options.update(kwargs)
        return options

    def client(self, **kwargs: Any) -> elasticsearch.Elasticsearch:
        """A synchronous client for this simulator (auth and CA set; ``kwargs`` override)."""
        import elasticsearch

        return elasticsearch.Elasticsearch(self.url, **self._client_kwargs(kwargs))

    def async_client(self, **kwargs: Any) -> elasticsearch.AsyncElasticsearch:
        """An asyncio client for this simulator (auth and CA set; ``kwargs`` override)."""
        import elasticsearch

        return elasticsearch.AsyncElasticsearch(self.url, **self._client_kwargs(kwargs))

    def connection_uri(self) -> str:
        """An Airflow connection URI (conn type ``elasticsearch``) for ``AIRFLOW_CONN_<ID>``."""
        if not self.url:
            raise RuntimeError("start the simulator first")
        assert self._server is not None
        port = self._server.server_address[1]
        userinfo = ""
        if self._basic_auth is not None:
            userinfo = f"{quote(self._basic_auth[0], safe='')}:{quote(self._basic_auth[1], safe='')}@"
        extras: dict[str, str] = {}
        if self._api_key is not None:
            extras["api_key"] = self._api_key
        if self.ca_certs:
            extras["ca_certs"] = self.ca_certs
        query = f"?{urlencode(extras)}" if extras else ""
        return f"elasticsearch://{userinfo}{self._host}:{port}/{'https' if self.tls else 'http'}{query}"

    # -- convenience -----------------------------------------------------------------------------

    def add_model(self, model_id: str, **kwargs: Any) -> None:
        self.cluster.add_model(model_id, **kwargs)

    def add_ml_node(self, name: str, processors: int, **kwargs: Any) -> str:
        return self.cluster.add_ml_node(name, processors, **kwargs)

    def fail_node(self, name: str, **kwargs: Any) -> None:
        self.cluster.fail_node(name, **kwargs)

    def set_load_seconds(self, seconds: float, *, model_id: str | None = None) -> None:
        self.cluster.set_load_seconds(seconds, model_id=model_id)

    def start_deployment(self, model_id: str, **kwargs: Any) -> dict[str, Any]:
        return self.cluster.start_deployment(model_id, **kwargs)

    def inject_fault(
        self,
        *,
        endpoint: str | None = None,
        status: int | None = None,
        reset: bool = False,
        latency: float = 0.0,
        times: int | None = None,
        probability: float | None = None,
    ) -> None:
        """Make matching requests fail or slow down; see :class:`~airflow_esml.testing.faults.Fault`."""
        self.faults.add(Fault(endpoint, status, reset, latency, times, probability))

    def clear_faults(self) -> None:
        self.faults.clear()

    # -- /_sim/ control routes (not Elasticsearch APIs) ------------------------------------------

    def _control_routes(self) -> list[Route]:
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


if __name__ == "__main__":  # pragma: no cover - exercised through subprocess in tests
    from airflow_esml.testing.__main__ import main

    raise SystemExit(main())
