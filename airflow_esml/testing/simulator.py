"""The embeddable simulator (:class:`Simulator`): the HTTP server, the cluster model and the API handlers
wired together on a loopback port.

``python -m airflow_esml.testing.simulator --help`` lists the flags of the command line
(:mod:`airflow_esml.testing.cli`).
"""

from __future__ import annotations

import logging
import os
import random
import runpy
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from airflow_esml.testing.api.bulk import BulkApi
from airflow_esml.testing.api.control import ControlApi
from airflow_esml.testing.api.documents import DocumentStore
from airflow_esml.testing.api.inference import InferenceApi, create_endpoint
from airflow_esml.testing.api.info import InfoApi
from airflow_esml.testing.api.ingest import IngestApi
from airflow_esml.testing.api.ml import MlApi
from airflow_esml.testing.api.reindex import ByQueryApi
from airflow_esml.testing.api.security import SecurityApi
from airflow_esml.testing.api.tasks import TasksApi
from airflow_esml.testing.cluster import Cluster
from airflow_esml.testing.docs.ingest import IngestService
from airflow_esml.testing.docs.tasks import TaskManager
from airflow_esml.testing.protocol import AuditLog, EsVersion
from airflow_esml.testing.server.auth import Authenticator
from airflow_esml.testing.server.faults import Fault, FaultInjector
from airflow_esml.testing.server.httpd import SimHTTPServer
from airflow_esml.testing.server.pipeline import SimApp
from airflow_esml.testing.server.privileges import Role
from airflow_esml.testing.server.routing import Router
from airflow_esml.testing.server.serverless import serverless_only_routes
from airflow_esml.testing.server.tls import TlsFiles, write_tls_files

if TYPE_CHECKING:
    import elasticsearch

log = logging.getLogger(__name__)

DEFAULT_ML_NODES: Mapping[str, int] = {"ml-node-1": 4, "ml-node-2": 4}


class Simulator:
    """An Elasticsearch ML cluster simulator on a loopback HTTP(S) port.

    :param ml_nodes: ML node name -> allocated processors (default two 4-processor nodes).
    :param models: PyTorch model ids to create.
    :param load_seconds: seconds a new allocation takes to load (``starting`` -> ``started``).
    :param es_version: simulated Elasticsearch version (8.13 to 9.x).
    :param autoscale: behave like an autoscaling cluster (add ML nodes instead of answering 429).
    :param api_key: require this API key (``Authorization: ApiKey ...``); it has every privilege.
    :param api_keys: more API keys, each with what it may do: a list of cluster privileges (``["monitor_ml",
        "manage_ml"]``) or a role descriptor (``{"cluster": [...], "indices": [{"names": ["esml-leases"],
        "privileges": ["read", "write"]}]}``). Every request of such a key is checked against the transport
        actions of its route and refused with Elasticsearch's 403 (docs/simulator.md, "Privileges").
    :param basic_auth: require these basic-auth credentials (either credential is accepted when both are set).
    :param tls_dir: serve HTTPS; the CA (``ca.crt``) and server certificate are written here.
    :param seed: seed of every random choice (faults, cluster), for reproducible runs.
    :param host: loopback address to listen on.
    :param port: port to listen on; 0 picks a free port.
    :param infer_seconds_per_doc: simulated inference time per document.
    :param scale_to_zero_seconds: idle time after which an adaptive deployment with minimum 0 scales to zero
        (default: the version's, 15 min or 24 h); a short value also shortens the scaler's sampling interval.
    :param endpoints: inference endpoints to create at construction, each the keyword arguments of
        :meth:`create_endpoint` (e.g. ``{"inference_id": "my-ep", "model_id": "my-e5"}``).
    :param serverless: answer as an Elastic Cloud Serverless project: ``GET /`` reports ``build_flavor:
        "serverless"`` and a version number that is not ``es_version``; ``_nodes``, ``_ml/info``,
        ``_cluster/settings`` and the other operator-only APIs answer 410; a fixed ``number_of_allocations`` is
        refused. ``es_version`` is then the stack version whose behaviour the project has.
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
        scale_to_zero_seconds: float | None = None,
        endpoints: Iterable[Mapping[str, Any]] = (),
        api_keys: Mapping[str, Sequence[str] | Mapping[str, Any]] | None = None,
        serverless: bool = False,
    ) -> None:
        self.version = EsVersion.parse(es_version)
        if self.version < EsVersion(8, 13) or self.version.major > 9:
            raise ValueError(f"es_version must be between 8.13 and 9.x, got {es_version}")
        self._host, self._port = host, port
        self._api_key, self._basic_auth = api_key, basic_auth
        try:
            self._api_keys = {key: Role.parse(spec, self.version) for key, spec in (api_keys or {}).items()}
        except ValueError as exc:
            raise ValueError(f"api_keys: {exc}") from None
        self.serverless = serverless
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
        if scale_to_zero_seconds is not None:
            self.cluster.set_scale_to_zero(scale_to_zero_seconds)
        for endpoint in endpoints:
            self.create_endpoint(**endpoint)
        self.documents = DocumentStore(audit=self.audit)
        self.ingest = IngestService.for_cluster(self.cluster, self.documents.find_index)
        self.documents.ingestor = self.ingest
        self.tasks = TaskManager(
            node_id=self.cluster.data_node_id,
            node_name="es-node-0",
            store=self.documents.put_document,
            read=self.documents.get,
        )
        self.faults = FaultInjector(rng=random.Random(None if seed is None else f"{seed}:faults"), audit=self.audit)
        self._uuid = str(uuid.UUID(int=random.Random(seed).getrandbits(128))) if seed is not None else str(uuid.uuid4())
        self._stopping = threading.Event()
        self._server: SimHTTPServer | None = None
        self._stopped = False
        self._thread: threading.Thread | None = None
        self.tls: TlsFiles | None = None
        self._auth: Authenticator | None = None
        self.url = ""

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def ca_certs(self) -> str | None:
        """Path of the CA certificate (PEM) when TLS is on."""
        return self.tls.ca_cert if self.tls else None

    def _router(self) -> Router:
        """Every route: the Elasticsearch endpoints, then the ``/_sim/`` control routes (never faulted)."""
        router = Router()
        info = InfoApi(self.version, self._uuid, serverless=self.serverless)
        security = SecurityApi(self._auth, self.version)
        for routes, names in (
            (info.routes(), info.endpoint_names),
            (self.documents.routes(), self.documents.endpoint_names),
            *((api.routes(), api.endpoint_names) for api in self._document_apis()),
            (security.routes(), security.endpoint_names),
        ):
            for method, template, handler in routes:
                router.add(method, template, handler, name=names[(method, template)])
        router.add_all(MlApi(self.cluster).routes())
        for method, template, handler, name in InferenceApi(self.cluster).routes():
            router.add(method, template, handler, name=name)
        if self.serverless:
            router.add_all(serverless_only_routes())
        for method, template, handler in [*self.faults.routes(), *ControlApi(self.cluster, self.audit).routes()]:
            router.add(method, template, handler, name="sim", control=True)
        return router

    def _document_apis(self) -> list[TasksApi | ByQueryApi | BulkApi | IngestApi]:
        return [
            TasksApi(self.tasks),
            ByQueryApi(self.documents, self.tasks),
            BulkApi(self.documents),
            IngestApi(self.ingest.pipelines),
        ]

    def start(self) -> Simulator:
        """Start serving; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("simulator already started")
        if self._stopped:
            raise RuntimeError("a stopped simulator cannot be restarted; create a new Simulator")
        self.tls = write_tls_files(self._tls_dir) if self._tls_dir is not None else None
        self._auth = None
        if self._api_key is not None or self._basic_auth is not None or self._api_keys:
            self._auth = Authenticator(api_key=self._api_key, basic_auth=self._basic_auth, api_keys=self._api_keys)
        app = SimApp(
            router=self._router(),
            audit=self.audit,
            version=self.version,
            auth=self._auth,
            faults=self.faults,
            stopping=self._stopping,
            serverless=self.serverless,
            index_exists=lambda name: name in self.documents.indices(),
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
        self.tasks.close()  # cancels running tasks and joins their threads
        server.server_close()
        self._server = self._thread = None
        self._stopped = True

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- clients ---------------------------------------------------------------------------------

    def _default_key(self) -> str | None:
        """The API key clients use by default: ``api_key``, else (without basic auth) the first of ``api_keys``."""
        if self._api_key is not None or self._basic_auth is not None:
            return self._api_key
        return next(iter(self._api_keys), None)

    def _client_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if not self.url:
            raise RuntimeError("start the simulator first")
        options: dict[str, Any] = {}
        if self._default_key() is not None:
            options["api_key"] = self._default_key()
        elif self._basic_auth is not None:
            options["basic_auth"] = self._basic_auth
        if self.ca_certs:
            options["ca_certs"] = self.ca_certs
        if {"api_key", "basic_auth", "bearer_auth"} & set(kwargs):  # the caller's credential replaces the default
            options.pop("api_key", None)
            options.pop("basic_auth", None)
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

    def connection_uri(self, api_key: str | None = None) -> str:
        """An Airflow connection URI (conn type ``elasticsearch``) for ``AIRFLOW_CONN_<ID>``.

        :param api_key: the API key it uses (one of ``api_keys``, or one created through the API); by default
            ``api_key``, else basic auth, else the first of ``api_keys``.
        """
        if not self.url:
            raise RuntimeError("start the simulator first")
        assert self._server is not None
        port = self._server.server_address[1]
        key = api_key if api_key is not None else self._default_key()
        userinfo = ""
        if self._basic_auth is not None and key is None:
            userinfo = f"{quote(self._basic_auth[0], safe='')}:{quote(self._basic_auth[1], safe='')}@"
        extras: dict[str, str] = {}
        if key is not None:
            extras["api_key"] = key
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

    def create_endpoint(
        self,
        inference_id: str,
        model_id: str | None = None,
        *,
        task_type: str = "text_embedding",
        num_allocations: int | None = 1,
        num_threads: int = 1,
        adaptive_allocations: Mapping[str, Any] | None = None,
        deployment_id: str | None = None,
    ) -> dict[str, Any]:
        """Create an inference endpoint of the ``elasticsearch`` service as ``PUT _inference/...`` does.

        :param inference_id: the endpoint id (and the id of the deployment it starts).
        :param model_id: the trained model.
        :param task_type: ``sparse_embedding``, ``text_embedding`` or ``rerank``.
        :param num_allocations: fixed allocations (``None`` with ``adaptive_allocations``).
        :param num_threads: threads per allocation.
        :param adaptive_allocations: ``{"enabled": True, "min_number_of_allocations": 0, ...}``.
        :param deployment_id: attach the endpoint to this existing deployment instead of starting one (the
            allocation and thread settings then come from the deployment).
        :return: the endpoint as the API returns it.
        """
        return create_endpoint(
            self.cluster,
            inference_id,
            model_id,
            task_type=task_type,
            num_allocations=num_allocations,
            num_threads=num_threads,
            adaptive_allocations=adaptive_allocations,
            deployment_id=deployment_id,
        )

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
        """Make matching requests fail or slow down; see :class:`~airflow_esml.testing.server.faults.Fault`."""
        self.faults.add(Fault(endpoint, status, reset, latency, times, probability))

    def clear_faults(self) -> None:
        self.faults.clear()


if __name__ == "__main__":  # pragma: no cover - exercised through subprocess in tests
    # ``python -m airflow_esml.testing.simulator``: the command line lives in ``cli``, which imports this module.
    runpy.run_module("airflow_esml.testing.cli", run_name="__main__", alter_sys=True)
