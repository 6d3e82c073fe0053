"""API keys with roles, enforced per transport action: the action table, the granting privileges in
Elasticsearch's order, and the exact 403 ``security_exception`` bodies the simulator answers."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from urllib.error import HTTPError

import elasticsearch
import pytest

from airflow_esml.testing import Simulator
from airflow_esml.testing.protocol import EsVersion
from airflow_esml.testing.server.auth import key_id_of
from airflow_esml.testing.server.privileges import ACTIONS, Check, Role, granting, route_key

NEWEST = EsVersion(9, 5, 1)
NO_MONITOR = "id-no-monitor:secret-1"
NO_MANAGE_ML = "id-readonly:secret-2"
INFERENCE_ADMIN = "id-inference:secret-3"
LEASES = "id-leases:secret-4"


@pytest.fixture
def keyed() -> Iterator[Simulator]:
    with Simulator(
        api_key="admin:admin-secret",
        api_keys={
            NO_MONITOR: ["monitor_ml", "manage_ml"],
            NO_MANAGE_ML: ["monitor_ml"],
            INFERENCE_ADMIN: ["manage_inference"],
            LEASES: {"cluster": ["monitor_ml"], "indices": [{"names": ["esml-*"], "privileges": ["read", "index"]}]},
        },
        seed=3,
    ) as sim:
        sim.cluster.start_deployment("my-e5", wait=True)
        yield sim


def raw(sim: Simulator, method: str, path: str, key: str, body: object = None) -> tuple[int, dict]:
    """One request with ``key``, answered as (status, JSON body), without the client's retries."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(sim.url + path, data=data, method=method)
    request.add_header("Authorization", f"ApiKey {key}")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read() or b"null")
    except HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_key_without_monitor_gets_the_exact_403_on_nodes(keyed: Simulator) -> None:
    status, body = raw(keyed, "GET", "/_nodes", NO_MONITOR)
    reason = (
        "action [cluster:monitor/nodes/info] is unauthorized for API key id [id-no-monitor] of user [elastic], "
        "this action is granted by the cluster privileges [monitor,manage,all]"
    )
    assert status == 403
    assert body == {
        "error": {"root_cause": [{"type": "security_exception", "reason": reason}], "type": "security_exception",
                  "reason": reason},
        "status": 403,
    }  # fmt: skip
    assert keyed.audit.events("request", endpoint="nodes", status=403)


@pytest.mark.parametrize(
    ("method", "path", "action", "privileges"),
    [
        ("GET", "/", "cluster:monitor/main", "monitor,manage,all"),
        ("GET", "/_cluster/settings", "cluster:monitor/settings", "monitor,manage,all"),
        ("GET", "/_nodes/stats", "cluster:monitor/nodes/stats", "monitor,manage,all"),
    ],
)
def test_every_monitoring_api_names_its_action(keyed: Simulator, method, path, action, privileges) -> None:
    status, body = raw(keyed, method, path, NO_MONITOR)
    assert status == 403 and body["error"]["reason"].startswith(f"action [{action}] is unauthorized")
    assert body["error"]["reason"].endswith(f"granted by the cluster privileges [{privileges}]")


def test_what_monitor_ml_and_manage_ml_allow(keyed: Simulator) -> None:
    assert raw(keyed, "GET", "/_ml/trained_models/my-e5/_stats", NO_MONITOR)[0] == 200
    assert raw(keyed, "GET", "/_ml/info", NO_MONITOR)[0] == 200
    assert raw(keyed, "POST", "/_ml/trained_models/my-e5/deployment/_update", NO_MONITOR,
               {"number_of_allocations": 2})[0] == 200  # fmt: skip
    assert keyed.cluster.target("my-e5") == 2


def test_a_key_without_manage_ml_cannot_update_and_nothing_changes(keyed: Simulator) -> None:
    status, body = raw(keyed, "POST", "/_ml/trained_models/my-e5/deployment/_update", NO_MANAGE_ML,
                       {"number_of_allocations": 3})  # fmt: skip
    assert status == 403 and body["error"]["reason"] == (
        "action [cluster:admin/xpack/ml/trained_models/deployment/update] is unauthorized for API key id "
        "[id-readonly] of user [elastic], this action is granted by the cluster privileges [manage_ml,manage,all]"
    )
    assert keyed.cluster.target("my-e5") == 1 and not keyed.audit.events("target_changed", new=3)


def test_manage_inference_does_not_grant_the_ml_update(keyed: Simulator) -> None:
    status, body = raw(keyed, "POST", "/_ml/trained_models/my-e5/deployment/_update", INFERENCE_ADMIN,
                       {"number_of_allocations": 3})  # fmt: skip
    assert status == 403 and "[manage_ml,manage,all]" in body["error"]["reason"]


def test_index_privileges_on_the_leases_index(keyed: Simulator) -> None:
    assert raw(keyed, "PUT", "/esml-leases", "admin:admin-secret")[0] == 200
    assert raw(keyed, "PUT", "/esml-leases/_doc/a", LEASES, {"x": 1})[0] == 201
    assert raw(keyed, "GET", "/esml-leases/_doc/a", LEASES)[0] == 200
    status, body = raw(keyed, "DELETE", "/esml-leases/_doc/a", LEASES)
    assert status == 403 and body["error"]["reason"] == (
        "action [indices:data/write/delete] is unauthorized for API key id [id-leases] of user [elastic] on indices "
        "[esml-leases], this action is granted by the index privileges [delete,write,all]"
    )
    status, body = raw(keyed, "PUT", "/other/_doc/a", LEASES, {"x": 1})
    assert status == 403 and "[indices:admin/auto_create]" in body["error"]["reason"]
    assert "granted by the index privileges [auto_configure,create_index,manage,all]" in body["error"]["reason"]


def test_the_client_sees_an_authorization_exception(keyed: Simulator) -> None:
    with keyed.client(api_key=NO_MONITOR) as es, pytest.raises(elasticsearch.AuthorizationException) as raised:
        es.nodes.info()
    assert raised.value.meta.status == 403 and "cluster privileges [monitor,manage,all]" in str(raised.value)


@pytest.mark.parametrize(
    ("kind", "action", "version", "expected"),
    [
        ("cluster", "cluster:monitor/xpack/ml/inference/stats/get", NEWEST, "monitor_ml,manage_ml,monitor,manage,all"),
        ("cluster", "cluster:monitor/xpack/inference/get", NEWEST,
         "monitor_inference,manage_inference,monitor,manage,all"),
        ("cluster", "cluster:monitor/xpack/inference/get", EsVersion(8, 13), "monitor,manage,all"),
        ("cluster", "cluster:admin/xpack/inference/update", NEWEST, "manage_inference,manage,all"),
        ("cluster", "cluster:monitor/xpack/ml/inference/infer", NEWEST, "monitor_ml,manage_ml,monitor,manage,all"),
        ("cluster", "cluster:admin/xpack/security/api_key/create", NEWEST,
         "manage_own_api_key,manage_api_key,manage_security,all"),
        ("index", "indices:data/read/search", NEWEST, "read,all"),
        ("index", "indices:data/write/index:op_type/index", NEWEST, "create,index,write,all"),
        ("index", "indices:data/write/index:op_type/create", NEWEST, "create_doc,create,index,write,all"),
    ],
)  # fmt: skip
def test_granting_privileges_in_elasticsearchs_order(kind, action, version, expected) -> None:
    assert ",".join(granting(kind, action, version)) == expected


def test_the_inference_update_also_needs_the_ml_update_privilege() -> None:
    from airflow_esml.testing.server.privileges import RouteContext, checks_for

    context = RouteContext(NEWEST, {"task_type": "sparse_embedding", "inference_id": "e"}, {}, lambda name: True)
    checks = checks_for("PUT", "/_inference/{task_type}/{inference_id}/_update", context)
    assert checks is not None and [c.action for c in checks] == [
        "cluster:admin/xpack/inference/update",
        "cluster:admin/xpack/ml/trained_models/deployment/update",
    ]
    inference_admin = Role.parse(["manage_inference"], NEWEST)
    assert inference_admin.allows(checks[0]) and not inference_admin.allows(checks[1])
    assert all(Role.parse(["manage_inference", "manage_ml"], NEWEST).allows(c) for c in checks)


def test_every_simulator_route_has_an_action() -> None:
    with Simulator(serverless=True) as sim:
        routes = sim._router().routes()
    missing = [(m, t) for m, t, _, control in routes if not control and route_key(m, t) not in ACTIONS]
    assert missing == []


def test_8_13_knows_no_inference_privileges() -> None:
    with pytest.raises(ValueError, match=r"^api_keys: unknown cluster privilege \[manage_inference\]\. a privilege "):
        Simulator(es_version="8.13.4", api_keys={"k": ["monitor_ml", "manage_inference"]})
    assert Role.parse(["manage_inference"], EsVersion(8, 14)).allows(
        Check("cluster", "cluster:admin/xpack/inference/put")
    )


def test_a_limited_role_allows_only_what_both_allow() -> None:
    role = Role.parse(["manage_ml", "monitor"], NEWEST).within(Role.parse(["monitor_ml"], NEWEST))
    assert role.allows(Check("cluster", "cluster:monitor/xpack/ml/info/get"))
    assert not role.allows(Check("cluster", "cluster:monitor/nodes/info"))
    assert not role.allows(Check("cluster", "cluster:admin/xpack/ml/trained_models/deployment/update"))


def test_key_ids() -> None:
    assert key_id_of("abc:def") == "abc" and len(key_id_of("no-colon")) == 20
