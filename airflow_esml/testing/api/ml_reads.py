"""Bodies of the read-only ML endpoints: trained model stats and configs (id expansion, paging), ``_nodes``
and ``_ml/info``. Call with the cluster lock held.

Sources (elastic/elasticsearch): ``expandIds`` of
x-pack/plugin/ml/src/main/java/org/elasticsearch/xpack/ml/inference/persistence/TrainedModelProvider.java
x-pack/plugin/ml/src/main/java/org/elasticsearch/xpack/ml/action/TransportGetTrainedModelsStatsAction.java
x-pack/plugin/ml/src/main/java/org/elasticsearch/xpack/ml/action/TransportGetTrainedModelsAction.java
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING, Any

from airflow_esml.testing.cluster.state import Model
from airflow_esml.testing.cluster.stats import ml_attributes
from airflow_esml.testing.cluster.values import epoch_millis
from airflow_esml.testing.protocol import EsError

if TYPE_CHECKING:
    from airflow_esml.testing.cluster import Cluster

ALL = "*"


def _missing(ids: list[str]) -> EsError:
    return EsError(404, "resource_not_found_exception", f"No known trained model with model_id [{','.join(ids)}]")


def _tokens(expr: str | None) -> list[str]:
    if expr is None or expr.strip() in ("", "_all", "*"):
        return ["_all"]
    return [t.strip() for t in expr.split(",") if t.strip()]


def expand_ids(
    cluster: Cluster, expr: str | None, allow_no_match: bool, *, deployments: bool
) -> dict[str, set[str] | str]:
    """Model id -> ``"*"`` (all its deployments) or the matched deployment ids.

    :param expr: comma list of ids / wildcards / ``_all``.
    :param allow_no_match: if false, a wildcard matching nothing is a 404 (explicit ids always are).
    :param deployments: also accept deployment ids (stats API).
    """
    matched: dict[str, set[str] | str] = {}
    missing: list[str] = []
    for token in _tokens(expr):
        pattern = "*" if token == "_all" else token
        wildcard = "*" in pattern
        hits = 0
        for model_id in cluster.models:
            if fnmatch.fnmatchcase(model_id, pattern):
                matched[model_id] = ALL
                hits += 1
        if deployments:
            for dep in cluster.deployments.values():
                if fnmatch.fnmatchcase(dep.deployment_id, pattern) and not (wildcard and dep.model_id in matched):
                    current = matched.setdefault(dep.model_id, set())
                    if isinstance(current, set):
                        current.add(dep.deployment_id)
                    hits += 1
        if hits == 0 and ((not wildcard and token != "_all") or not allow_no_match):
            missing.append(token)
    if missing:
        raise _missing(missing)
    return matched


def _page(ids: list[str], from_: int, size: int) -> list[str]:
    return sorted(ids)[from_ : from_ + size]


def model_stats(
    cluster: Cluster, expr: str | None, allow_no_match: bool, from_: int, size: int, human: bool
) -> dict[str, Any]:
    """``GET _ml/trained_models/<ids>/_stats``: one entry per deployment, ``count`` = models."""
    now = cluster._advance()
    matched = expand_ids(cluster, expr, allow_no_match, deployments=True)
    renderer = cluster.renderer(now, human)
    entries = []
    for model_id in _page(list(matched), from_, size):
        wanted = matched[model_id]
        deps = sorted(
            (d for d in cluster.deployments.values() if d.model_id == model_id),
            key=lambda d: d.deployment_id,
        )
        deps = [d for d in deps if wanted == ALL or d.deployment_id in wanted]
        model = cluster.models[model_id]
        if not deps:
            entries.append(renderer.model_entry(model, None))
        entries.extend(renderer.model_entry(model, d) for d in deps)
    return {"count": len(matched), "trained_model_stats": entries}


def model_configs(
    cluster: Cluster, expr: str | None, allow_no_match: bool, from_: int, size: int, include: set[str]
) -> dict[str, Any]:
    """``GET _ml/trained_models/<ids>``."""
    matched = expand_ids(cluster, expr, allow_no_match, deployments=False)
    page = _page(list(matched), from_, size)
    if "definition" in include:
        for model_id in page:
            model = cluster.models[model_id]
            if model.model_type == "pytorch":
                raise EsError(
                    400,
                    "status_exception",
                    f"[{model_id}] is type [pytorch] and does not support retrieving the definition",
                )
    configs = [model_config(cluster, cluster.models[m], include) for m in page]
    return {"count": len(matched), "trained_model_configs": configs}


def model_config(cluster: Cluster, model: Model, include: set[str]) -> dict[str, Any]:
    """A ``TrainedModelConfig``."""
    builtin = model.model_type == "lang_ident"
    out: dict[str, Any] = {
        "model_id": model.model_id,
        "model_type": model.model_type,
        "created_by": "_xpack" if builtin else "api_user",
        "version": "7.6.0" if builtin else str(cluster.version),
        "create_time": epoch_millis(model.create_wall),
        "model_size_bytes": model.model_bytes,
        "estimated_operations": 39629 if builtin else 0,
        "license_level": "basic" if builtin else "platinum",
        "description": "Model used for identifying language from arbitrary input text." if builtin else "",
        "tags": ["lang_ident", "prepackaged"] if builtin else [],
        "input": {"field_names": [model.input_field]},
    }
    if builtin:
        out["inference_config"] = {"classification": {"num_top_classes": 0, "top_classes_results_field": "top_classes"}}
    else:
        out["inference_config"] = {
            "text_embedding": {
                "tokenization": {
                    "bert": {"do_lower_case": False, "with_special_tokens": True, "max_sequence_length": 512}
                },
                "embedding_size": 8,
            }
        }
        out["location"] = {"index": {"name": ".ml-inference-native-000002"}}
    if "definition_status" in include:
        out["fully_defined"] = True
    return out


def nodes_info(cluster: Cluster, selector: str | None) -> dict[str, Any]:
    """``GET _nodes[/<selector>]``: the master/data node plus every ML node."""
    nodes: dict[str, dict[str, Any]] = {}
    data_id = cluster.data_node_id
    data = _node_json(
        cluster, "es-node-0", 9300, ["data", "ingest", "master", "remote_cluster_client", "transform"], {}
    )
    data["attributes"] = {"xpack.installed": "true", "ml.config_version": "12.0.0"}
    candidates = {data_id: data}
    for node in sorted(cluster.nodes.values(), key=lambda n: n.node_id):
        entry = _node_json(cluster, node.name, node.port, ["ml", "remote_cluster_client"], ml_attributes(node))
        entry["os"] = {"available_processors": node.processors, "allocated_processors": node.processors}
        candidates[node.node_id] = entry
    for node_id, entry in candidates.items():
        if _selected(selector, node_id, entry):
            nodes[node_id] = entry
    total = len(nodes)
    return {
        "_nodes": {"total": total, "successful": total, "failed": 0},
        "cluster_name": cluster.cluster_name,
        "nodes": nodes,
    }


def _node_json(cluster: Cluster, name: str, port: int, roles: list[str], attributes: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "transport_address": f"127.0.0.1:{port}",
        "host": "127.0.0.1",
        "ip": "127.0.0.1",
        "version": str(cluster.version),
        "build_flavor": "default",
        "build_type": "docker",
        "build_hash": "0" * 40,
        "total_indexing_buffer": 53687091,
        "roles": roles,
        "attributes": attributes,
    }


def _selected(selector: str | None, node_id: str, entry: dict[str, Any]) -> bool:
    if selector is None or selector in ("", "_all"):
        return True
    for part in selector.split(","):
        part = part.strip()
        if ":" in part:
            role, value = part.split(":", 1)
            if (role in entry["roles"]) == (value == "true"):
                return True
        elif part in ("_local", "_master"):
            return "master" in entry["roles"]
        elif part == node_id or fnmatch.fnmatchcase(entry["name"], part):
            return True
    return False


def whole_megabytes(count: int) -> str:
    """``ByteSizeValue.ofMb(bytes.getMb()).getStringRep()``: whole megabytes, rounded down (``"4885mb"``)."""
    return f"{count // 2**20}mb"


def ml_info(cluster: Cluster) -> dict[str, Any]:
    """``GET _ml/info``: defaults, upgrade mode, native code and the limits capacity checks use."""
    healthy = list(cluster.nodes.values())
    limits: dict[str, Any] = {}
    if healthy:
        biggest = max(n.ml_memory_bytes for n in healthy)
        limits["max_single_ml_node_processors"] = max(n.processors for n in healthy)
        limits["total_ml_processors"] = sum(n.processors for n in healthy)
        limits["effective_max_model_memory_limit"] = whole_megabytes(biggest - 30 * 2**20)
        limits["total_ml_memory"] = whole_megabytes(sum(n.ml_memory_bytes for n in healthy))
    return {
        "defaults": {
            "anomaly_detectors": {
                "categorization_analyzer": {
                    "char_filter": ["first_line_with_letters"],
                    "tokenizer": "ml_standard",
                    "filter": [{"type": "stop", "stopwords": ["Monday", "Tuesday", "Wednesday"]}],
                },
                "model_memory_limit": "1gb",
                "categorization_examples_limit": 4,
                "model_snapshot_retention_days": 10,
                "daily_model_snapshot_retention_after_days": 1,
            },
            "datafeeds": {"scroll_size": 1000},
        },
        "upgrade_mode": False,
        "native_code": {"version": str(cluster.version), "build_hash": "0123456789abcdef"},
        "limits": limits,
    }
