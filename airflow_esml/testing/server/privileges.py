"""Elasticsearch's privileges, as the simulator enforces them: which transport action each route runs, which
named privileges grant it, and the 403 ``security_exception`` text of a refusal.

Sources (elastic/elasticsearch): the named privileges of ``ClusterPrivilegeResolver`` and ``IndexPrivilege``
(x-pack/plugin/core/src/main/java/org/elasticsearch/xpack/core/security/authz/privilege/), the action names of
the REST handlers' transport actions (``GetTrainedModelsStatsAction.NAME`` and so on), and the denial text of
``AuthorizationDenialMessages`` (x-pack/plugin/security/.../authz/). ``monitor_inference`` and
``manage_inference`` came with PR #106371 (first released in 8.14). As in Elasticsearch's automatons, ``*``
matches across ``/``. The order of the "granted by" list follows the examples Elasticsearch prints (most
specific first, ``all`` last); only the privileges simulated here are listed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from airflow_esml.testing.protocol import EsError, EsVersion

_ML = "cluster:admin/xpack/ml/trained_models/deployment"
_INFERENCE_SINCE = EsVersion(8, 14)

#: named cluster privileges -> the action patterns they grant (in the order a denial lists them)
CLUSTER_PRIVILEGES: dict[str, tuple[str, ...]] = {
    "monitor_ml": ("cluster:monitor/xpack/ml/*",),
    "monitor_inference": (
        "cluster:monitor/xpack/inference*",
        "cluster:monitor/xpack/ml/trained_models/deployment/infer",
    ),
    "manage_ml": ("cluster:admin/xpack/ml/*", "cluster:monitor/xpack/ml/*"),
    "manage_inference": (
        "cluster:admin/xpack/inference/*",
        "cluster:monitor/xpack/inference*",
        f"{_ML}/start",
        f"{_ML}/stop",
        "cluster:monitor/xpack/ml/trained_models/deployment/infer",
    ),
    "manage_own_api_key": ("cluster:admin/xpack/security/api_key/*",),
    "manage_api_key": ("cluster:admin/xpack/security/api_key/*",),
    "monitor": ("cluster:monitor/*",),
    "transport_client": ("cluster:monitor/nodes/liveness", "cluster:monitor/state"),
    "manage_security": ("cluster:admin/xpack/security/*",),
    "manage": ("cluster:*",),  # minus the security actions, see _EXCLUDED
    "all": ("cluster:*",),
}
_EXCLUDED = {"manage": ("cluster:admin/xpack/security/*",)}

#: named index privileges -> the action patterns they grant (in the order a denial lists them)
INDEX_PRIVILEGES: dict[str, tuple[str, ...]] = {
    "read": ("indices:data/read/*",),
    "create_doc": (
        "indices:data/write/index",
        "indices:data/write/index[*",
        "indices:data/write/index:op_type/create",
        "indices:data/write/bulk*",
    ),
    "create": ("indices:data/write/index*", "indices:data/write/bulk*"),
    "index": ("indices:data/write/index*", "indices:data/write/bulk*", "indices:data/write/update*"),
    "delete": ("indices:data/write/delete*", "indices:data/write/bulk*"),
    "view_index_metadata": ("indices:admin/get*", "indices:admin/mappings/get*"),
    "maintenance": ("indices:admin/refresh*", "indices:admin/flush*", "indices:admin/forcemerge*"),
    "auto_configure": ("indices:admin/mapping/auto_put", "indices:admin/auto_create"),
    "create_index": ("indices:admin/create", "indices:admin/auto_create", "indices:admin/data_stream/create"),
    "delete_index": ("indices:admin/delete*",),
    "write": ("indices:data/write/*", "indices:admin/mapping/auto_put"),
    "manage": ("indices:monitor/*", "indices:admin/*"),
    "all": ("indices:*",),
}


def cluster_privilege_names(version: EsVersion) -> list[str]:
    """The named cluster privileges ``version`` knows (8.13 has no ``monitor_inference``/``manage_inference``)."""
    return [
        name
        for name in CLUSTER_PRIVILEGES
        if version >= _INFERENCE_SINCE or name not in ("monitor_inference", "manage_inference")
    ]


@cache
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else re.escape(c) for c in text) + r"\Z")


def _grants(patterns: Iterable[str], action: str) -> bool:
    return any(_pattern(p).match(action) for p in patterns)


def cluster_grants(privilege: str, action: str) -> bool:
    """Whether the named cluster privilege (or a raw ``cluster:...`` action pattern) grants ``action``."""
    patterns = CLUSTER_PRIVILEGES.get(privilege, (privilege,) if privilege.startswith("cluster:") else ())
    return _grants(patterns, action) and not _grants(_EXCLUDED.get(privilege, ()), action)


def index_grants(privilege: str, action: str) -> bool:
    """Whether the named index privilege (or a raw ``indices:...`` action pattern) grants ``action``."""
    patterns = INDEX_PRIVILEGES.get(privilege, (privilege,) if privilege.startswith("indices:") else ())
    return _grants(patterns, action)


def granting(kind: str, action: str, version: EsVersion) -> list[str]:
    """The named privileges that grant ``action``, in the order Elasticsearch's denial lists them."""
    if kind == "cluster":
        return [p for p in cluster_privilege_names(version) if cluster_grants(p, action)]
    return [p for p in INDEX_PRIVILEGES if index_grants(p, action)]


def unknown_cluster_privilege(name: str, version: EsVersion) -> str:
    """``ClusterPrivilegeResolver.resolve``'s refusal of a name that ``version`` does not know."""
    return (
        f"unknown cluster privilege [{name}]. a privilege must be either one of the predefined cluster privilege "
        f"names [{','.join(cluster_privilege_names(version))}] or a pattern over one of the available cluster actions"
    )


def unknown_index_privilege(name: str) -> str:
    """``IndexPrivilege.resolve``'s refusal of an unknown name."""
    return (
        f"unknown index privilege [{name}]. a privilege must be either one of the predefined fixed indices "
        f"privileges [{','.join(INDEX_PRIVILEGES)}] or a pattern over one of the available index actions"
    )


@dataclass(frozen=True)
class IndexGrant:
    """Index privileges on the indices whose names match ``names`` (``*`` wildcards)."""

    names: tuple[str, ...]
    privileges: tuple[str, ...]

    def covers(self, index: str) -> bool:
        return _grants(self.names, index)


@dataclass(frozen=True)
class Role:
    """What an API key may do: cluster privileges and index grants (one role descriptor, or several merged).

    ``Role.superuser()`` may do everything.
    """

    cluster: frozenset[str] = frozenset()
    indices: tuple[IndexGrant, ...] = ()
    unrestricted: bool = False
    limit: Role | None = None

    @classmethod
    def superuser(cls) -> Role:
        return cls(unrestricted=True)

    @classmethod
    def parse(cls, spec: Sequence[str] | Mapping[str, Any], version: EsVersion) -> Role:
        """A role from a list of cluster privileges, or a role descriptor ``{"cluster": [...], "indices":
        [{"names": [...], "privileges": [...]}]}``.

        :raises ValueError: a privilege ``version`` does not know, with Elasticsearch's text.
        """
        if isinstance(spec, Mapping):
            cluster, indices = list(spec.get("cluster") or ()), list(spec.get("indices") or ())
        else:
            cluster, indices = list(spec), []
        errors = [unknown_cluster_privilege(p, version) for p in cluster if not _known_cluster(p, version)]
        grants = []
        for entry in indices:
            names = entry.get("names") or ()
            privileges = tuple(entry.get("privileges") or ())
            errors += [unknown_index_privilege(p) for p in privileges if not _known_index(p)]
            grants.append(IndexGrant(tuple([names] if isinstance(names, str) else names), privileges))
        if errors:
            raise ValueError("; ".join(errors))
        return cls(frozenset(cluster), tuple(grants))

    @classmethod
    def merge(cls, roles: Iterable[Role]) -> Role:
        """The union of several role descriptors (as Elasticsearch unions an API key's descriptors)."""
        found = list(roles)
        if any(r.unrestricted for r in found):
            return cls.superuser()
        return cls(frozenset().union(*(r.cluster for r in found)), tuple(g for r in found for g in r.indices))

    def allows(self, check: Check) -> bool:
        if self.limit is not None and not self.limit.allows(check):
            return False
        if self.unrestricted:
            return True
        if check.kind == "cluster":
            return any(cluster_grants(p, check.action) for p in self.cluster)
        return all(
            any(g.covers(index) and any(index_grants(p, check.action) for p in g.privileges) for g in self.indices)
            for index in check.indices
        )

    def within(self, limit: Role) -> Role:
        """This role limited by ``limit``: an API key's privileges are its descriptors intersected with its
        creator's."""
        return self if limit.unrestricted else replace(self, limit=limit)

    @property
    def empty(self) -> bool:
        return not self.unrestricted and not self.cluster and not any(g.privileges for g in self.indices)


def _known_cluster(name: str, version: EsVersion) -> bool:
    return name in cluster_privilege_names(version) or name.startswith("cluster:")


def _known_index(name: str) -> bool:
    return name in INDEX_PRIVILEGES or name.startswith("indices:")


@dataclass(frozen=True)
class Check:
    """One authorization check: a transport action, cluster-wide or on ``indices``."""

    kind: str
    action: str
    indices: tuple[str, ...] = ()


def denial(check: Check, key_id: str, user: str, version: EsVersion) -> EsError:
    """Elasticsearch's 403 for an API key refused ``check`` (``AuthorizationDenialMessages.Default``)."""
    on = f" on indices [{','.join(check.indices)}]" if check.indices else ""
    privileges = ",".join(granting(check.kind, check.action, version))
    reason = (
        f"action [{check.action}] is unauthorized for API key id [{key_id}] of user [{user}]{on}, this action is "
        f"granted by the {check.kind} privileges [{privileges}]"
    )
    return EsError(403, "security_exception", reason)


# -- the routes' actions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteContext:
    """What an action rule may look at: the simulated version, the path parameters and the query."""

    version: EsVersion
    params: Mapping[str, str]
    query: Mapping[str, str]
    index_exists: Callable[[str], bool]

    def param(self, position: int) -> str:
        """The value of the ``position``-th ``{...}`` segment of the template."""
        return list(self.params.values())[position]


ActionRule = Callable[[RouteContext], list[Check]]


def _cluster(*actions: str) -> ActionRule:
    return lambda ctx: [Check("cluster", a) for a in actions]


def _nodes(ctx: RouteContext) -> list[Check]:
    stats = "stats" in ctx.params.values()
    return [Check("cluster", "cluster:monitor/nodes/stats" if stats else "cluster:monitor/nodes/info")]


def _inference_post(ctx: RouteContext) -> list[Check]:
    # InferenceAction (8.13-8.17); InferenceActionProxy from PR #121804, named .../post in the newest code [?]
    post = ctx.version >= EsVersion(9, 1)
    return [Check("cluster", "cluster:monitor/xpack/inference/post" if post else "cluster:monitor/xpack/inference")]


def _inference_update(ctx: RouteContext) -> list[Check]:
    # TransportUpdateInferenceModelAction runs the ML update as the caller: a hidden child action that
    # manage_inference does not grant (es-privileges sheet: inference from the source, no test seen)
    return [Check("cluster", "cluster:admin/xpack/inference/update"), Check("cluster", f"{_ML}/update")]


def _doc_write(op_type: str) -> ActionRule:
    def rule(ctx: RouteContext) -> list[Check]:
        index = ctx.params.get("index", "")
        op = ctx.query.get("op_type", op_type)
        checks = [] if ctx.index_exists(index) else [Check("index", "indices:admin/auto_create", (index,))]
        return [*checks, Check("index", f"indices:data/write/index:op_type/{op}", (index,))]

    return rule


def _on_index(action: str) -> ActionRule:
    return lambda ctx: [Check("index", action, (ctx.params.get("index", ""),))]


_TM = "/_ml/trained_models"
_CREATE_KEY = _cluster("cluster:admin/xpack/security/api_key/create")

#: (method, path template with every ``{...}`` written as ``{}``) -> the checks a request makes
ACTIONS: dict[tuple[str, str], ActionRule] = {
    ("GET", "/"): _cluster("cluster:monitor/main"),
    ("HEAD", "/"): _cluster("cluster:monitor/main"),
    ("POST", f"{_TM}/{{}}/deployment/_start"): _cluster(f"{_ML}/start"),
    ("POST", f"{_TM}/{{}}/deployment/_stop"): _cluster(f"{_ML}/stop"),
    ("POST", f"{_TM}/{{}}/deployment/_update"): _cluster(f"{_ML}/update"),
    ("POST", f"{_TM}/{{}}/deployment/cache/_clear"): _cluster(f"{_ML}/clear_cache"),
    ("POST", f"{_TM}/{{}}/_infer"): _cluster("cluster:monitor/xpack/ml/inference/infer"),
    ("POST", f"{_TM}/{{}}/deployment/_infer"): _cluster("cluster:monitor/xpack/ml/inference/infer"),
    ("GET", f"{_TM}/_stats"): _cluster("cluster:monitor/xpack/ml/inference/stats/get"),
    ("GET", f"{_TM}/{{}}/_stats"): _cluster("cluster:monitor/xpack/ml/inference/stats/get"),
    ("GET", _TM): _cluster("cluster:monitor/xpack/ml/inference/get"),
    ("GET", f"{_TM}/{{}}"): _cluster("cluster:monitor/xpack/ml/inference/get"),
    ("GET", "/_nodes"): _nodes,
    ("GET", "/_nodes/{}"): _nodes,
    ("GET", "/_nodes/{}/{}"): _nodes,
    ("GET", "/_nodes/stats"): _cluster("cluster:monitor/nodes/stats"),
    ("GET", "/_ml/info"): _cluster("cluster:monitor/xpack/ml/info/get"),
    ("GET", "/_ml/memory/_stats"): _cluster("cluster:monitor/xpack/ml/memory/stats/get"),
    ("GET", "/_ml/memory/{}/_stats"): _cluster("cluster:monitor/xpack/ml/memory/stats/get"),
    ("GET", "/_cluster/settings"): _cluster("cluster:monitor/settings"),
    ("GET", "/_cluster/health"): _cluster("cluster:monitor/health"),
    ("GET", "/_cluster/health/{}"): _cluster("cluster:monitor/health"),
    ("GET", "/_cluster/stats"): _cluster("cluster:monitor/stats"),
    # inference endpoints (GetInferenceModelAction, PutInferenceModelAction, ...; the PUT runs the ML start
    # as the caller, which manage_inference grants)
    ("GET", "/_inference"): _cluster("cluster:monitor/xpack/inference/get"),
    ("GET", "/_inference/_all"): _cluster("cluster:monitor/xpack/inference/get"),
    ("GET", "/_inference/{}/_all"): _cluster("cluster:monitor/xpack/inference/get"),
    ("GET", "/_inference/{}"): _cluster("cluster:monitor/xpack/inference/get"),
    ("GET", "/_inference/{}/{}"): _cluster("cluster:monitor/xpack/inference/get"),
    ("PUT", "/_inference/{}"): _cluster("cluster:admin/xpack/inference/put"),
    ("PUT", "/_inference/{}/{}"): _cluster("cluster:admin/xpack/inference/put"),
    ("DELETE", "/_inference/{}"): _cluster("cluster:admin/xpack/inference/delete"),
    ("DELETE", "/_inference/{}/{}"): _cluster("cluster:admin/xpack/inference/delete"),
    ("PUT", "/_inference/{}/_update"): _inference_update,
    ("PUT", "/_inference/{}/{}/_update"): _inference_update,
    ("POST", "/_inference/{}"): _inference_post,
    ("POST", "/_inference/{}/{}"): _inference_post,
    # security
    ("POST", "/_security/api_key"): _CREATE_KEY,
    ("PUT", "/_security/api_key"): _CREATE_KEY,
    # documents (the bulk item's implied action is the one a single-document write is refused on)
    ("PUT", "/{}/_doc/{}"): _doc_write("index"),
    ("POST", "/{}/_doc/{}"): _doc_write("index"),
    ("POST", "/{}/_doc"): _doc_write("create"),
    ("PUT", "/{}/_create/{}"): _doc_write("create"),
    ("POST", "/{}/_create/{}"): _doc_write("create"),
    ("GET", "/{}/_doc/{}"): _on_index("indices:data/read/get"),
    ("HEAD", "/{}/_doc/{}"): _on_index("indices:data/read/get"),
    ("DELETE", "/{}/_doc/{}"): _on_index("indices:data/write/delete"),
    ("PUT", "/{}"): _on_index("indices:admin/create"),
    ("HEAD", "/{}"): _on_index("indices:admin/get"),
    ("GET", "/{}"): _on_index("indices:admin/get"),
    ("DELETE", "/{}"): _on_index("indices:admin/delete"),
    ("POST", "/{}/_refresh"): _on_index("indices:admin/refresh"),
    ("GET", "/{}/_refresh"): _on_index("indices:admin/refresh"),
    ("GET", "/{}/_search"): _on_index("indices:data/read/search"),
    ("POST", "/{}/_search"): _on_index("indices:data/read/search"),
}


def route_key(method: str, template: str) -> tuple[str, str]:
    """``(method, template)`` with every ``{name}`` written as ``{}``, the key of :data:`ACTIONS`."""
    return method.upper(), "/" + "/".join("{}" if s.startswith("{") else s for s in template.strip("/").split("/") if s)


def checks_for(method: str, template: str, context: RouteContext) -> list[Check] | None:
    """The checks a request on this route makes; None for a route with no known action."""
    rule = ACTIONS.get(route_key(method, template))
    return None if rule is None else rule(context)
