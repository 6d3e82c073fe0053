"""``GET /`` (the client's ``info()``) and ``HEAD /`` (its ``ping()``)."""

from __future__ import annotations

from typing import Any

from airflow_esml.testing.protocol import EsVersion, Route, SimRequest, SimResponse

_LUCENE = {8: "9.10.0", 9: "10.2.2"}
_MIN_WIRE = {8: ("7.17.0", "7.0.0"), 9: ("8.19.0", "8.0.0")}


def serverless_version_number(version: EsVersion) -> str:
    """What a Serverless project reports as ``version.number``: "the next target Elasticsearch release version at
    the time of the request", not a deployed version (Elastic's API docs of ``GET /``); here the minor release
    after the stack version whose behaviour the simulated project has."""
    return f"{version.major}.{version.minor + 1}.0"


def cluster_info(version: EsVersion, cluster_uuid: str, *, serverless: bool = False) -> dict[str, Any]:
    """The body of ``GET /`` for ``version`` (Lucene and wire versions approximate).

    :param serverless: as a Serverless project answers: ``build_flavor: "serverless"`` and a version number
        that is not ``version`` (see :func:`serverless_version_number`).
    """
    wire, index = _MIN_WIRE.get(version.major, ("8.19.0", "8.0.0"))
    return {
        "name": "serverless" if serverless else "sim-node-1",
        "cluster_name": "esml-simulator",
        "cluster_uuid": cluster_uuid,
        "version": {
            "number": serverless_version_number(version) if serverless else str(version),
            "build_flavor": "serverless" if serverless else "default",
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
    :param serverless: answer as a Serverless project.
    """

    endpoint_names: dict[tuple[str, str], str] = {("GET", "/"): "info", ("HEAD", "/"): "ping"}

    def __init__(self, version: EsVersion, cluster_uuid: str, *, serverless: bool = False) -> None:
        self.version, self.cluster_uuid, self.serverless = version, cluster_uuid, serverless

    def routes(self) -> list[Route]:
        return [("GET", "/", self.info), ("HEAD", "/", self.ping)]

    def info(self, request: SimRequest) -> SimResponse:
        return SimResponse(200, cluster_info(self.version, self.cluster_uuid, serverless=self.serverless))

    def ping(self, request: SimRequest) -> SimResponse:
        return SimResponse(200, None)
