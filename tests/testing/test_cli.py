"""The command line: ``python -m airflow_esml.testing.simulator``."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from airflow_esml.testing.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def running(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_esml.testing.simulator", "--port", "0", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        err = proc.stderr.read() if proc.stderr is not None and proc.poll() is not None else ""
        assert line.startswith("listening on "), (line, err)
        yield proc, line.removeprefix("listening on ").strip()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.headers["X-Elastic-Product"] == "Elasticsearch"
        return json.loads(resp.read())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_serves_until_signal(sig: signal.Signals) -> None:
    with running(
        "--ml-node", "n1:2", "--model", "m1", "--load-seconds", "0.01", "--es-version", "9.1.0", "--seed", "3"
    ) as (
        proc,
        url,
    ):
        assert url.startswith("http://127.0.0.1:")
        assert _get(url + "/")["version"]["number"] == "9.1.0"
        proc.send_signal(sig)
        assert proc.wait(timeout=15) == 0
        assert proc.stderr is not None and "Traceback" not in proc.stderr.read()


def test_cli_audit_over_http() -> None:
    with running() as (proc, url):
        _get(url + "/")
        events = _get(url + "/_sim/audit?kind=request")["events"]
        assert [e["data"]["endpoint"] for e in events][:1] == ["info"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0


def test_cli_deploys_at_boot() -> None:
    with running("--ml-node", "n1:4", "--model", "m1", "--deploy", "m1:2", "--load-seconds", "0.01") as (proc, url):
        stats = _get(url + "/_ml/trained_models/m1/_stats")
        deployment = stats["trained_model_stats"][0]["deployment_stats"]
        assert deployment["number_of_allocations"] == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


def test_cli_rejects_bad_node_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_esml.testing.simulator", "--ml-node", "nocolon"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "NAME:PROCESSORS" in result.stderr


def test_help_lists_every_flag() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_esml.testing.simulator", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    flags = [
        "--port",
        "--host",
        "--ml-node",
        "--model",
        "--load-seconds",
        "--autoscale",
        "--api-key",
        "--tls-dir",
        "--seed",
        "--es-version",
        "--deploy",
        "--infer-seconds-per-doc",
        "--endpoint",
        "--scale-to-zero-seconds",
        "--restricted-key",
        "--serverless",
    ]
    for flag in flags:
        assert flag in result.stdout
    documented = {a.option_strings[-1] for a in build_parser()._actions if a.option_strings}
    assert set(flags) <= documented
    assert all(a.help for a in build_parser()._actions)


@pytest.mark.parametrize("module", ["airflow_esml.testing", "airflow_esml.testing.cli"])
def test_every_entry_point_runs_the_same_cli(module: str) -> None:
    def help_of(name: str) -> str:
        result = subprocess.run(
            [sys.executable, "-W", "error::DeprecationWarning", "-m", name, "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert help_of(module) == help_of("airflow_esml.testing.simulator")


def test_cli_deploys_named_deployments_at_boot() -> None:
    deploys = ("--deploy", "m1", "--deploy", "m1-a=m1:2", "--deploy", "m1-b=m1")
    with running("--ml-node", "n1:8", "--model", "m1", *deploys, "--load-seconds", "0.01") as (proc, url):
        stats = _get(url + "/_ml/trained_models/m1/_stats")["trained_model_stats"]
        allocations = {
            s["deployment_stats"]["deployment_id"]: s["deployment_stats"]["number_of_allocations"] for s in stats
        }
        assert allocations == {"m1": 1, "m1-a": 2, "m1-b": 1}
        assert _get(url + "/_ml/trained_models/m1-a/_stats")["trained_model_stats"][0]["model_id"] == "m1"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


@pytest.mark.parametrize("bad", ["=m1:1", "m1-a=", "m1:0", "m1-a=m1:x"])
def test_cli_rejects_a_bad_deploy_flag(bad: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--deploy", bad])
    assert exit_info.value.code == 2


def test_the_examples_command_serves_every_example_dags_deployments() -> None:
    from airflow_esml.testing.cli import EXAMPLES_ARGS, EXAMPLES_COMMAND

    args = list(EXAMPLES_ARGS)
    del args[args.index("--port") : args.index("--port") + 2]  # a free port here, 9200 in the docs
    with running(*args, "--load-seconds", "0.01") as (proc, url):
        for deployment_id in ("my-e5", "my-e5-a", "my-e5-b"):  # esml_batch_inference, esml_ab_test, business hours
            stats = _get(f"{url}/_ml/trained_models/{deployment_id}/_stats")["trained_model_stats"][0]
            assert stats["deployment_stats"]["deployment_id"] == deployment_id
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    for doc in ("README.md", "docs/simulator.md"):
        assert EXAMPLES_COMMAND in (ROOT / doc).read_text(), doc


def test_cli_creates_endpoints_at_boot_and_sets_the_scale_to_zero_time() -> None:
    endpoints = ("--endpoint", "ep=m1:2", "--endpoint", "sparse_embedding/elser=.elser_model_2")
    args = ("--ml-node", "n1:8", "--model", "m1", *endpoints, "--load-seconds", "0.01", "--scale-to-zero-seconds", "60")
    with running(*args) as (_proc, url):
        listed = {e["inference_id"]: e for e in _get(url + "/_inference/_all")["endpoints"]}
        assert listed["ep"]["task_type"] == "text_embedding"
        assert listed["ep"]["service_settings"]["num_allocations"] == 2
        assert listed["elser"]["task_type"] == "sparse_embedding"
        assert listed["elser"]["service_settings"]["model_id"] == ".elser_model_2"
        stats = _get(url + "/_ml/trained_models/ep/_stats")["trained_model_stats"][0]["deployment_stats"]
        assert (stats["deployment_id"], stats["model_id"]) == ("ep", "m1")


def _status(url: str, key: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, headers={"Authorization": f"ApiKey {key}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_cli_serverless_with_a_restricted_key() -> None:
    role = '{"cluster": ["monitor_ml"], "indices": [{"names": ["esml-leases"], "privileges": ["read"]}]}'
    with running("--serverless", "--restricted-key", "ro:secret", role, "--restricted-key", "mon:s2", "monitor") as (
        proc,
        url,
    ):
        status, body = _status(url + "/", "ro:secret")
        assert status == 403 and "granted by the cluster privileges [monitor,manage,all]" in body["error"]["reason"]
        status, body = _status(url + "/", "mon:s2")
        assert status == 200 and body["version"]["build_flavor"] == "serverless"
        assert _status(url + "/_ml/info", "mon:s2")[0] == 410
        assert _status(url + "/_ml/trained_models/_stats", "ro:secret")[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


@pytest.mark.parametrize("bad", ["ep", "=m1", "ep=", "ep=m1:0", "completion/ep=m1"])
def test_cli_rejects_a_bad_endpoint_flag(bad: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--endpoint", bad])
    assert exit_info.value.code == 2


def test_endpoint_and_scale_to_zero_flags_are_documented() -> None:
    options = {a.option_strings[-1]: a for a in build_parser()._actions if a.option_strings}
    assert "[TASK_TYPE/]INFERENCE_ID=MODEL_ID[:ALLOCATIONS]" in str(options["--endpoint"].metavar)
    assert "first inference call" in (options["--endpoint"].help or "")
    assert "scale to zero" in (options["--scale-to-zero-seconds"].help or "")
    parsed = build_parser().parse_args(["--endpoint", "rerank/rr=m:3", "--scale-to-zero-seconds", "1.5"])
    assert parsed.endpoint == [{"inference_id": "rr", "model_id": "m", "task_type": "rerank", "num_allocations": 3}]
    assert parsed.scale_to_zero_seconds == 1.5
    builtin = build_parser().parse_args(["--endpoint", "my-elser=.elser_model_2"]).endpoint[0]
    assert builtin["task_type"] == "sparse_embedding"


def test_cli_refuses_an_unknown_privilege() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_esml.testing.simulator", "--es-version", "8.13.0", "--restricted-key", "k",
         "manage_inference"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2 and "unknown cluster privilege [manage_inference]" in result.stderr
