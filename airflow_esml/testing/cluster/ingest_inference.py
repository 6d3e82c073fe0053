"""Inference for ingest (the ``inference`` processor and ``semantic_text``): one request per document.

The inference processor sends one inference request per document and the documents of a bulk request run
concurrently (elastic/elasticsearch#103665), without the ``_infer`` timeout (PR #79243). So every document of a
batch is queued at once on the deployment's workers, each against the node queue's ``queue_capacity``: the
documents that do not fit fail with 429 "inference process queue is full" while the others run. Capacity, queues
and counters are the same as ``_infer``'s (:mod:`airflow_esml.testing.cluster.inference`), so the stats API shows
ingest work as it shows ``_infer`` work.
"""

from __future__ import annotations

import time
from typing import Any

from airflow_esml.testing.cluster.inference import QueueFullError, fake_result
from airflow_esml.testing.cluster.inference_ops import QUEUE_FULL, InferenceOps
from airflow_esml.testing.protocol import EsError

# How long an ingest document waits for a deployment scaled to zero to get an allocation.
ALLOCATION_WAIT_SECONDS = 60.0

Outcome = dict[str, Any] | EsError


def infer_each(cluster: InferenceOps, ident: str, texts: list[Any]) -> list[Outcome]:
    """Queue one request per text on the deployment ``ident``; wait for the accepted ones.

    :param cluster: the cluster model.
    :param ident: a deployment id, or a model id with a deployment (an inference endpoint of the
        ``elasticsearch`` service has the deployment id of its inference id).
    :param texts: the input texts.
    :return: per text, the result (``{"predicted_value": [...]}``) or the 429 :class:`EsError` of a full queue.
    :raises EsError: for the whole batch: 404 unknown model, 409 not deployed / not allocated, 503 closed.
    """
    if not texts:
        return []
    with cluster.lock:
        now = cluster._advance()
        dep = cluster._resolve(ident)
        dep = cluster._await_allocation(ident, dep, now + ALLOCATION_WAIT_SECONDS, ALLOCATION_WAIT_SECONDS)
        now = cluster._advance()
        outcomes: list[Outcome] = []
        end, rejected = now, 0
        for text in texts:
            try:
                done = dep.engine.schedule(now, 1, cluster.infer_seconds_per_doc, dep.queue_capacity)
            except QueueFullError as full:
                dep.engine.nodes[full.node_id].rejected += 1
                rejected += 1
                outcomes.append(EsError(429, "status_exception", QUEUE_FULL))
                continue
            end = max(end, done)
            outcomes.append(fake_result(text))
        accepted = len(texts) - rejected
        if accepted:
            cluster._record("inference", now, deployment_id=dep.deployment_id, docs=accepted, status=200, via="ingest")
        if rejected:
            cluster._record("inference", now, deployment_id=dep.deployment_id, docs=rejected, status=429, via="ingest")
    while (left := end - cluster._now()) > 0 and not cluster.closed:
        time.sleep(min(left, 0.05))
    cluster._check_open()
    return outcomes


def input_field(cluster: InferenceOps, ident: str) -> str:
    """The input field of the model behind a deployment or model id (``text_field`` when unknown)."""
    with cluster.lock:
        dep = cluster.deployments.get(ident)
        model = cluster.models.get(dep.model_id if dep is not None else ident)
        return model.input_field if model is not None else "text_field"
