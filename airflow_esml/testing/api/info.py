"""``GET /`` (the client's ``info()``) and ``HEAD /`` (its ``ping()``)."""

from __future__ import annotations

from typing import Any

from airflow_esml.testing.protocol import EsVersion, Route, SimRequest, SimResponse

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


class InfoApi:
    """The root endpoints of one simulated cluster.

    :param version: the simulated Elasticsearch version.
    :param cluster_uuid: the ``cluster_uuid`` to report.
    """

    endpoint_names: dict[tuple[str, str], str] = {("GET", "/"): "info", ("HEAD", "/"): "ping"}

    def __init__(self, version: EsVersion, cluster_uuid: str) -> None:
        self.version, self.cluster_uuid = version, cluster_uuid

    def routes(self) -> list[Route]:
        return [("GET", "/", self.info), ("HEAD", "/", self.ping)]

    def info(self, request: SimRequest) -> SimResponse:
        return SimResponse(200, cluster_info(self.version, self.cluster_uuid))

    def ping(self, request: SimRequest) -> SimResponse:
        return SimResponse(200, None)
