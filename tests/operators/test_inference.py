"""BatchInferenceOperator: inputs, the small XCom summary, results to a file, and a cheap import."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from airflow_esml.exceptions import InvalidParameterError
from airflow_esml.operators.inference import SMALL_BATCH, BatchInferenceOperator
from tests.hooks.test_inference import FakeHook, FakeML, status, texts


def operator(docs: Any, **kwargs: Any) -> BatchInferenceOperator:
    op = BatchInferenceOperator(task_id="infer", deployment_id="my-e5", docs=docs, **kwargs)
    op.__dict__["hook"] = asyncio.run(_hook())
    return op


async def _hook() -> FakeHook:
    return FakeHook(FakeML(workers=2), status(allocations=2))


def echoes(summary: dict[str, Any]) -> list[str]:
    return [r["echo"] for r in summary["results"]]


def test_summary_is_small_and_json_safe_for_a_large_batch() -> None:
    summary = operator(texts(SMALL_BATCH + 1)).execute({})  # type: ignore[arg-type]
    assert summary["docs"] == SMALL_BATCH + 1 and summary["allocations"] == 2
    assert summary["docs_per_second"] > 0 and "results" not in summary
    assert json.loads(json.dumps(summary)) == summary


def test_small_batches_return_their_results_by_default() -> None:
    summary = operator(texts(5)).execute({})  # type: ignore[arg-type]
    assert echoes(summary) == texts(5)
    assert "results" not in operator(texts(5), return_results=False).execute({})  # type: ignore[arg-type]


def test_results_go_to_a_file_in_order(tmp_path: Path) -> None:
    path = tmp_path / "out" / "results.jsonl"
    summary = operator(texts(150), output_path=str(path)).execute({})  # type: ignore[arg-type]
    lines = [json.loads(line)["echo"] for line in path.read_text().splitlines()]
    assert lines == texts(150)
    assert summary["output_path"] == str(path) and "results" not in summary


@pytest.mark.parametrize(
    "docs",
    [
        json.dumps([{"text_field": "doc 0"}, {"text_field": "doc 1"}]),
        str([{"text_field": "doc 0"}, {"text_field": "doc 1"}]),  # what {{ ti.xcom_pull(...) }} renders
        lambda context: ["doc 0", "doc 1"],
    ],
)
def test_docs_from_templates_and_callables(docs: Any) -> None:
    assert echoes(operator(docs).execute({})) == ["doc 0", "doc 1"]  # type: ignore[arg-type]


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(InvalidParameterError, match="not a JSON or Python list"):
        operator("{{ not rendered").execute({})  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="return_results"):
        BatchInferenceOperator(task_id="x", deployment_id="d", docs=[], return_results="yes")
    with pytest.raises(InvalidParameterError, match="chunk_size"):
        BatchInferenceOperator(task_id="x", deployment_id="d", docs=[], chunk_size=0)


def test_an_empty_batch_sends_nothing() -> None:
    op = operator([])
    assert op.execute({})["docs"] == 0  # type: ignore[arg-type]
    assert op.hook.ml.calls == 0  # type: ignore[attr-defined]


def test_docs_is_templated() -> None:
    assert "docs" in BatchInferenceOperator.template_fields


@pytest.mark.parametrize(
    ("docs", "kwargs", "said"),
    [
        (5, {}, "Results of 5 document(s): in the XCom under 'results'"),
        (5, {"return_results": False}, "Results of 5 document(s) not kept: no output_path, and return_results=False"),
        (SMALL_BATCH + 1, {}, f"not kept: no output_path, and more than {SMALL_BATCH} documents"),
        (5, {"output_path": "OUT"}, "Results of 5 document(s): written to OUT"),
    ],
)
def test_the_log_says_where_the_results_went(
    docs: int, kwargs: dict[str, Any], said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if "output_path" in kwargs:
        kwargs["output_path"] = str(tmp_path / "results.jsonl")
        said = said.replace("OUT", kwargs["output_path"])
    operator(texts(docs), **kwargs).execute({})  # type: ignore[arg-type]
    assert said in capsys.readouterr().out  # the task's own logger writes to the task log (stdout here)


def test_a_2000_document_task_log_is_short_and_has_no_warning(
    sim: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every logger at INFO (caplog), and the task's own logger (stdout): fewer than 30 lines in all."""
    from airflow_esml.hooks.retry import TRANSPORT_LOGGER

    transport = logging.getLogger(TRANSPORT_LOGGER)
    before = transport.level
    transport.setLevel(logging.NOTSET)  # as in a fresh task process
    try:
        sim.cluster.set_infer_seconds_per_doc(0.001)
        caplog.set_level(logging.INFO)  # every logger
        summary = BatchInferenceOperator(task_id="infer", deployment_id="my-e5", docs=texts(2000)).execute({})  # type: ignore[arg-type]
    finally:
        transport.setLevel(before)
    assert summary["docs"] == 2000 and summary["requests"] > 100
    outside = "cannot be called outside of the Task Runner"  # Airflow's, as execute() is called directly here
    task_lines = [line for line in capsys.readouterr().out.splitlines() if outside not in line]
    assert any("Results of 2000 document(s) not kept" in line for line in task_lines)
    assert len(caplog.records) + len(task_lines) < 30, ([r.getMessage() for r in caplog.records], task_lines)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [line for line in task_lines if "warning" in line.lower() or "error" in line.lower()]


def test_an_endpoint_batch_says_what_it_inferred_through() -> None:
    from tests.hooks.test_inference import endpoint_target

    op = BatchInferenceOperator(task_id="infer", deployment_id="elser-1", docs=texts(3))
    op.__dict__["hook"] = FakeHook(FakeML(workers=1), status(allocations=1), endpoint_target("sparse_embedding"))
    summary = op.execute({})  # type: ignore[arg-type]
    assert (summary["managed_by"], summary["inference_id"], summary["task_type"]) == (
        "inference",
        "elser-1",
        "sparse_embedding",
    )
    assert [next(iter(r["embedding"])) for r in summary["results"]] == texts(3)


def test_a_rerank_endpoint_without_a_query_fails_before_it_is_deployed() -> None:
    from tests.hooks.test_inference import endpoint_target

    op = BatchInferenceOperator(task_id="infer", deployment_id="rr", docs=texts(3))
    hook = FakeHook(FakeML(workers=1), status(allocations=1), endpoint_target("rerank", "rr"))
    hook.ensure_deployed = None  # type: ignore[assignment,method-assign]  # must not be reached
    op.__dict__["hook"] = hook
    with pytest.raises(InvalidParameterError, match="query must be a non-empty string"):
        op.execute({})  # type: ignore[arg-type]


def test_a_trained_model_batch_says_so() -> None:
    summary = operator(texts(2)).execute({})  # type: ignore[arg-type]
    assert summary["managed_by"] == "trained_models" and summary["inference_id"] is None
