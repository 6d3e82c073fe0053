"""Sizing of a batch sent through the worker, and the documents as ``_infer`` takes them, pure."""

from __future__ import annotations

import pytest

from airflow_esml.core.batch import MAX_CHUNK, normalize_docs, plan_batch
from airflow_esml.exceptions import InvalidParameterError
from tests.fake_tasks import status


def test_plan_uses_allocations_times_threads() -> None:
    plan = plan_batch(status(allocations=4, threads=2), docs=10_000)
    assert plan.workers == 8
    assert plan.in_flight == 16
    assert plan.chunk_size == MAX_CHUNK


def test_plan_for_a_small_batch_uses_small_chunks_and_respects_overrides() -> None:
    assert plan_batch(status(allocations=4), docs=20).chunk_size == 1
    plan = plan_batch(status(allocations=4), docs=20, chunk_size=5, in_flight=3)
    assert (plan.chunk_size, plan.in_flight) == (5, 3)


def test_plan_keeps_documents_in_flight_within_the_queue() -> None:
    plan = plan_batch(status(allocations=8, queue=40), docs=100_000)
    assert plan.in_flight * plan.chunk_size <= 40 + plan.workers


def test_normalize_docs() -> None:
    assert normalize_docs(["a", {"other": 1}], "text_field") == [{"text_field": "a"}, {"other": 1}]
    with pytest.raises(InvalidParameterError, match="document 1"):
        normalize_docs(["a", 3], "text_field")
    with pytest.raises(InvalidParameterError, match="single str"):
        normalize_docs("abc", "text_field")
