"""Batch inference: order, 429 backoff, errors, and the run against the simulator (sizing: tests/core/test_batch.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import elasticsearch
import pytest
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig

from airflow_esml.core.status import DeploymentStatus
from airflow_esml.core.target import Target, trained_model_target
from airflow_esml.exceptions import DeploymentNotFoundError, InvalidParameterError, TransientRequestError
from airflow_esml.hooks.inference import InFlightWindow, Progress, abatch_infer, batch_infer, run_sync
from airflow_esml.testing import Simulator
from airflow_esml.testing.cluster.inference import fake_result


def status(allocations: int = 2, threads: int = 1, queue_capacity: int | None = 1024) -> DeploymentStatus:
    return DeploymentStatus(
        deployment_id="my-e5",
        model_id="my-e5",
        state="started",
        target_allocations=allocations,
        started_allocations=allocations,
        allocation_state="fully_allocated",
        threads_per_allocation=threads,
        queue_capacity=queue_capacity,
    )


def api_error(code: int) -> elasticsearch.ApiError:
    meta = ApiResponseMeta(
        status=code, http_version="1.1", headers=HttpHeaders(), duration=0.0, node=NodeConfig("http", "sim", 9200)
    )
    return elasticsearch.ApiError("error", meta=meta, body={"error": {"type": "x", "reason": f"status {code}"}})


class FakeML:
    """``client.ml`` with ``workers`` parallel slots, scripted errors, and a record of concurrency."""

    def __init__(self, workers: int, errors: list[int] | None = None, service: float = 0.002) -> None:
        self.slots = asyncio.Semaphore(workers)
        self.errors = list(errors or [])
        self.service = service
        self.active = self.peak = self.calls = 0

    async def infer_trained_model(self, *, model_id: str, docs: list[dict[str, Any]], timeout: str) -> Any:
        self.calls += 1
        if self.errors:
            raise api_error(self.errors.pop(0))
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            async with self.slots:
                await asyncio.sleep(self.service * len(docs))
        finally:
            self.active -= 1
        return type("Response", (), {"body": {"inference_results": [{"echo": d["text_field"]} for d in docs]}})()


class FakeHook:
    kibana_url = None  # no link to Kibana

    def __init__(self, ml: FakeML, deployment: DeploymentStatus | Exception, named: Target | None = None) -> None:
        self.ml = ml
        self.deployment = deployment
        self.closed = 0
        self.named = named or trained_model_target("my-e5")
        self.read: list[str] = []
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    def target(self, deployment_id: str) -> Target:
        return self.named

    def ensure_deployed(self, deployment_id: str, *, timeout: float) -> Target:
        return self.named

    async def aget_deployment(self, deployment_id: str) -> DeploymentStatus:
        self.read.append(deployment_id)
        if isinstance(self.deployment, Exception):
            raise self.deployment
        return self.deployment

    async def perform_request(self, method: str, path: str, *, params: Any, headers: Any, body: Any) -> Any:
        """``POST _inference/<task_type>/<id>``: one result per input, shaped by the task type."""
        self.sent.append((method, path, body))
        await self.ml.infer_trained_model(model_id=path, docs=[{"text_field": t} for t in body["input"]], timeout="")
        task_type = path.split("/")[2]
        if task_type == "rerank":  # sorted by score, as Elasticsearch answers
            scored = sorted(enumerate(body["input"]), key=lambda pair: -len(pair[1]))
            return Response({"rerank": [{"index": i, "relevance_score": float(len(t))} for i, t in scored]})
        entries = [{"embedding": {t: 1.0}, "is_truncated": False} for t in body["input"]]
        return Response({task_type: entries})

    async def aclient(self) -> Any:
        return self

    async def aclose(self) -> None:
        self.closed += 1


class Response:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body


def texts(n: int) -> list[str]:
    return [f"doc {i}" for i in range(n)]


async def test_results_keep_document_order_with_requests_in_flight() -> None:
    ml = FakeML(workers=4)
    result = await abatch_infer(FakeHook(ml, status(allocations=4)), "my-e5", texts(300), chunk_size=3)
    assert [r["echo"] for r in result.results] == texts(300)
    assert result.requests == ml.calls == 100
    assert ml.peak == 8  # two requests per allocation
    assert result.summary()["docs"] == 300 and "results" not in result.summary()


async def test_queue_full_backs_off_and_shrinks_the_window() -> None:
    ml = FakeML(workers=2, errors=[429] * 6)
    result = await abatch_infer(FakeHook(ml, status(allocations=2)), "my-e5", texts(40), chunk_size=2)
    assert [r["echo"] for r in result.results] == texts(40)
    assert result.rejected == 6
    assert result.requests == 20 + 6


async def test_queue_full_for_too_long_fails() -> None:
    ml = FakeML(workers=1, errors=[429] * 1000)
    with pytest.raises(TransientRequestError, match="queue stayed full"):
        await abatch_infer(FakeHook(ml, status(allocations=1)), "my-e5", texts(3), max_queue_wait=0.2)


async def test_transient_errors_are_retried_a_few_times() -> None:
    ml = FakeML(workers=1, errors=[503, 502])
    result = await abatch_infer(FakeHook(ml, status(allocations=1)), "my-e5", texts(2), chunk_size=2)
    assert len(result.results) == 2 and result.rejected == 0
    ml = FakeML(workers=1, errors=[503] * 10)
    with pytest.raises(TransientRequestError, match="still failing"):
        await abatch_infer(FakeHook(ml, status(allocations=1)), "my-e5", texts(2), chunk_size=2)


async def test_terminal_errors_fail_at_once() -> None:
    ml = FakeML(workers=1, errors=[409])
    with pytest.raises(Exception, match="409") as info:
        await abatch_infer(FakeHook(ml, status(allocations=1)), "my-e5", texts(5), chunk_size=1, in_flight=1)
    assert not isinstance(info.value, TransientRequestError)
    assert ml.calls == 1
    with pytest.raises(DeploymentNotFoundError):
        await abatch_infer(FakeHook(ml, DeploymentNotFoundError("gone")), "gone", texts(1))


def test_sync_entry_point_closes_the_async_client() -> None:
    async def build() -> FakeHook:
        return FakeHook(FakeML(workers=2), status(allocations=2))

    hook = asyncio.run(build())
    result = batch_infer(hook, "my-e5", texts(10))  # type: ignore[arg-type]
    assert [r["echo"] for r in result.results] == texts(10)
    assert hook.closed == 1


async def test_run_sync_works_inside_a_running_loop() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert run_sync(answer()) == 42


async def test_window_halves_on_rejection_and_grows_back() -> None:
    window = InFlightWindow(8, cooldown=0.0)
    await window.acquire()
    await window.release(rejected=True)
    assert window.limit == 4
    for _ in range(4):
        await window.acquire()
        await window.release(rejected=False)
    assert window.limit == 5


# -- against the simulator -------------------------------------------------------------------------------


def test_batch_against_the_simulator_keeps_order_through_429s(sim: Simulator) -> None:
    from airflow_esml.hooks.ml import ElasticsearchMLHook

    sim.cluster.update_deployment("my-e5", number_of_allocations=2)
    sim.cluster.wait_for("my-e5", "fully_allocated")
    sim.inject_fault(endpoint="infer", status=429, times=5)
    docs = texts(120)
    result = batch_infer(ElasticsearchMLHook(), "my-e5", docs)
    assert result.results == [fake_result(text) for text in docs]
    assert result.rejected == 5 and result.plan.allocations == 2
    infer = sim.audit.events("request", endpoint="infer")
    assert len(infer) == result.requests and sum(e.data["status"] == 429 for e in infer) == 5


def test_a_full_inference_queue_is_backed_off_not_failed(sim: Simulator) -> None:
    from airflow_esml.hooks.ml import ElasticsearchMLHook

    sim.cluster.start_deployment("my-e5", deployment_id="tiny-queue", queue_capacity=2, wait=True)
    sim.cluster.set_infer_seconds_per_doc(0.01)
    docs = texts(60)
    result = batch_infer(ElasticsearchMLHook(), "tiny-queue", docs, chunk_size=2, in_flight=6)
    assert result.results == [fake_result(text) for text in docs]
    assert result.rejected > 0  # the simulator's own queue-full answers
    assert sim.audit.events("inference", deployment_id="tiny-queue", status=429)


# -- what a batch logs -------------------------------------------------------------------------------------


@pytest.fixture
def transport() -> Iterator[logging.Logger]:
    """The client's request logger with no level set, as in a fresh task process; restored after."""
    from airflow_esml.hooks.retry import TRANSPORT_LOGGER

    logger = logging.getLogger(TRANSPORT_LOGGER)
    before = logger.level
    logger.setLevel(logging.NOTSET)
    yield logger
    logger.setLevel(before)


async def test_progress_lines_count_documents_rate_and_time_left(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="airflow_esml.hooks.inference")
    hook = FakeHook(FakeML(workers=2, service=0.001), status(allocations=2))
    await abatch_infer(hook, "my-e5", texts(200), chunk_size=10, progress_interval=0.0)  # type: ignore[arg-type]
    lines = [r.getMessage() for r in caplog.records if r.name == "airflow_esml.hooks.inference"]
    assert lines[0].startswith("my-e5: 10/200 documents (5%), ") and " docs/s, ETA " in lines[0]
    assert lines[-1].startswith("my-e5: 200 docs in ")  # the totals, once at the end
    assert not any(line.startswith("my-e5: 200/200") for line in lines)


def test_progress_line_wording() -> None:
    progress = Progress("my-e5", 2000)
    progress.done = 1200
    assert progress.line(3.0) == "1200/2000 documents (60%), 400.0 docs/s, ETA 2s"
    progress.done = 0
    assert progress.line(3.0) == "0/2000 documents (0%), 0.0 docs/s, ETA unknown"


def test_a_2000_document_batch_logs_a_few_lines_and_no_warning(
    sim: Simulator, caplog: pytest.LogCaptureFixture, transport: logging.Logger
) -> None:
    from airflow_esml.hooks.ml import ElasticsearchMLHook

    sim.cluster.update_deployment("my-e5", number_of_allocations=2)
    sim.cluster.wait_for("my-e5", "fully_allocated")
    sim.cluster.set_infer_seconds_per_doc(0.001)
    caplog.set_level(logging.INFO)  # every logger, the client's included
    result = batch_infer(ElasticsearchMLHook(), "my-e5", texts(2000), progress_interval=0.5)
    assert result.docs == 2000 and result.requests > 100  # many requests ...
    assert 1 <= len(caplog.records) < 30, [r.getMessage() for r in caplog.records]  # ... a few lines
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r for r in caplog.records if r.name.startswith("elastic_transport")]


def test_the_clients_warnings_still_show(caplog: pytest.LogCaptureFixture, transport: logging.Logger) -> None:
    from airflow_esml.hooks.retry import TRANSPORT_LOGGER, quiet_transport

    caplog.set_level(logging.INFO)
    quiet_transport()
    transport.info("POST http://sim/_ml/trained_models/my-e5/_infer [status:200 duration:0.010s]")
    transport.warning("Retrying request after failure (attempt 1 of 3)")
    assert [r.levelname for r in caplog.records if r.name == TRANSPORT_LOGGER] == ["WARNING"]
    transport.setLevel(logging.DEBUG)  # a deployment that wants every request keeps its choice
    quiet_transport()
    assert transport.level == logging.DEBUG


# -- inference endpoints ---------------------------------------------------------------------------------------


def endpoint_target(task_type: str, endpoint_id: str = "elser-1", deployment_id: str | None = None) -> Target:
    return Target(
        endpoint_id,
        "endpoint_deployment" if deployment_id is None else "attached_endpoint",
        deployment_id or endpoint_id,
        "inference",
        endpoint_id,
        task_type,
        endpoint_id=endpoint_id,
        endpoint_task_type=task_type,
    )


@pytest.mark.parametrize("task_type", ["sparse_embedding", "text_embedding"])
def test_an_endpoint_is_sent_its_texts_and_answers_in_document_order(task_type: str) -> None:
    named = endpoint_target(task_type)
    hook = FakeHook(FakeML(workers=2), status(allocations=2), named)
    result = batch_infer(hook, "elser-1", texts(40), chunk_size=8)  # type: ignore[arg-type]
    assert [next(iter(r["embedding"])) for r in result.results] == texts(40)
    assert {path for _, path, _ in hook.sent} == {f"/_inference/{task_type}/elser-1"}
    assert all(body == {"input": body["input"]} for _, _, body in hook.sent)
    assert result.summary()["requests"] == 5 and hook.ml.peak == result.plan.in_flight == 4  # 2 per allocation


def test_an_attached_endpoint_infers_through_the_endpoint_and_sizes_by_its_deployment() -> None:
    hook = FakeHook(FakeML(workers=2), status(allocations=2), endpoint_target("text_embedding", "e", "d"))
    batch_infer(hook, "e", texts(3))  # type: ignore[arg-type]
    assert hook.read == ["d"]
    assert {path for _, path, _ in hook.sent} == {"/_inference/text_embedding/e"}


def test_rerank_results_go_back_to_their_documents() -> None:
    hook = FakeHook(FakeML(workers=1), status(allocations=1), endpoint_target("rerank", "rr"))
    docs = ["a", "bbb", "cc", "dddd"]
    result = batch_infer(hook, "rr", docs, chunk_size=2, query="which is longest?")  # type: ignore[arg-type]
    assert [r["relevance_score"] for r in result.results] == [1.0, 3.0, 2.0, 4.0]
    assert all(body["query"] == "which is longest?" for _, _, body in hook.sent)


def test_rerank_needs_a_query_before_any_request() -> None:
    hook = FakeHook(FakeML(workers=1), status(allocations=1), endpoint_target("rerank", "rr"))
    with pytest.raises(InvalidParameterError, match="query must be a non-empty string for a rerank endpoint"):
        batch_infer(hook, "rr", texts(2))  # type: ignore[arg-type]
    assert not hook.sent


def test_an_endpoint_needs_a_text_in_every_document() -> None:
    hook = FakeHook(FakeML(workers=1), status(allocations=1), endpoint_target("sparse_embedding"))
    docs = [{"text_field": "ok"}, {"body": "no text field"}]
    with pytest.raises(InvalidParameterError, match="document 1 has no text in field_name='text_field'"):
        batch_infer(hook, "elser-1", docs)  # type: ignore[arg-type]
    assert not hook.sent


def test_a_429_of_an_endpoint_backs_off_like_infer() -> None:
    hook = FakeHook(FakeML(workers=1, errors=[429, 429]), status(allocations=1), endpoint_target("sparse_embedding"))
    result = batch_infer(hook, "elser-1", texts(4), chunk_size=2)  # type: ignore[arg-type]
    assert result.rejected == 2 and len(result.results) == 4


def test_the_pure_part_keeps_its_old_import_path() -> None:
    from airflow_esml.core import batch
    from airflow_esml.hooks import inference

    moved = ("BatchPlan", "BatchResult", "plan_batch", "normalize_docs")
    for name in (*moved, "MAX_CHUNK", "REQUESTS_PER_WORKER", "CONNECTIONS_PER_NODE"):
        assert getattr(inference, name) is getattr(batch, name), name
