"""The e2e launcher's simulator command line, checked against the simulator's own parser."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_esml.testing.cli import build_parser
from tests.e2e._simulator import simulator_args


@pytest.mark.parametrize("api_key", ["-starts-with-a-dash", "--two-dashes", "plain_key-1"])
def test_any_url_safe_key_reaches_the_simulator_whole(api_key: str, tmp_path: Path) -> None:
    parsed = build_parser().parse_args(simulator_args(api_key, tmp_path, ["--model", "m", "--deploy", "m:1"]))
    assert parsed.api_key == api_key
    assert parsed.tls_dir == str(tmp_path)
    assert parsed.port == 0
