"""Shared helpers: medians, the machine description, the waiting child process protocol."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("apache-airflow", "apache-airflow-providers-elasticsearch", "elasticsearch", "elastic-transport", "aiohttp")


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def machine() -> dict[str, Any]:
    """Cores, memory, Python and package versions of this machine."""
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        memory = "unknown"
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "cores": os.cpu_count(),
        "cpu": cpu or "unknown",
        "memory": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
    }


@dataclass
class Child:
    """A waiting process (``python -m benchmarks.waiter``): it imports everything, says it is ready, waits for
    "go" on stdin, runs its triggers and writes its result to a JSON file."""

    proc: subprocess.Popen[bytes]
    ready_path: Path
    result_path: Path

    @classmethod
    def spawn(cls, config: dict[str, Any], env: dict[str, str]) -> Child:
        tmp = Path(tempfile.mkdtemp(prefix="esml-bench-"))
        config = {**config, "ready_path": str(tmp / "ready"), "result_path": str(tmp / "result.json")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.waiter", json.dumps(config)],
            cwd=ROOT,
            env={**os.environ, **env},
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return cls(proc, tmp / "ready", tmp / "result.json")

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready_path.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"waiting child did not start (exit code {self.proc.returncode})")
            time.sleep(0.02)

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()

    def result(self, timeout: float) -> dict[str, Any]:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        try:
            if self.proc.returncode != 0 or not self.result_path.exists():
                raise RuntimeError(f"waiting child failed (exit code {self.proc.returncode})")
            result: dict[str, Any] = json.loads(self.result_path.read_text())
        finally:
            shutil.rmtree(self.result_path.parent, ignore_errors=True)
        return result

    def kill(self) -> None:
        """Stop the child (if still running) and remove its temporary folder."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.result_path.parent, ignore_errors=True)


def wait_exactly(hook: Any, deployment_id: str, allocations: int, timeout: float = 60.0) -> None:
    """Until exactly ``allocations`` are started (a scale-down is ``fully_allocated`` while still above)."""
    deadline = time.monotonic() + timeout
    while hook.get_deployment(deployment_id).started_allocations != allocations:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{deployment_id} did not settle at {allocations} allocations")
        time.sleep(0.05)
