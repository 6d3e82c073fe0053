"""The simulator's HTTP server: everything between the socket and a route handler.

- ``routing``: path templates, endpoint names, "no handler found" / 405 answers;
- ``pipeline``: one request from route match to response (faults, media types, auth, audit);
- ``httpd``: the threaded HTTP/1.1 socket server;
- ``faults``, ``auth``, ``tls``: fault injection, credential checks, certificates.

Knows nothing of the cluster model or of the Elasticsearch APIs: handlers come in through :class:`Router`.
"""

from __future__ import annotations

from airflow_esml.testing.server.httpd import SimHTTPServer
from airflow_esml.testing.server.pipeline import RawResponse, SimApp, check_media_types
from airflow_esml.testing.server.routing import Router, endpoint_name

__all__ = ["RawResponse", "Router", "SimApp", "SimHTTPServer", "check_media_types", "endpoint_name"]
