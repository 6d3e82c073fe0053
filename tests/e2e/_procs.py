"""Child processes for the end-to-end tests: own process groups, logs to files, always stopped."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ManagedProcess:
    """
    One child process in its own process group, its output appended to a log file.

    :param name: short name used in file names and messages.
    :param argv: command line.
    :param env: full environment of the child.
    :param log_path: file that receives stdout and stderr.
    :param cwd: working directory of the child.
    """

    def __init__(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path | None = None
    ) -> None:
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_log(self, pattern: str, timeout: float) -> re.Match[str]:
        """
        Wait until the log matches a regular expression.

        :param pattern: regular expression searched in the whole log.
        :param timeout: seconds to wait before failing.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log_text())
            if match:
                return match
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")
            time.sleep(0.2)
        raise TimeoutError(f"{self.name}: no {pattern!r} in its log after {timeout:.0f}s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def kill(self) -> None:
        """
        Kill the whole process group at once (a crash, not a shutdown), and the groups of its descendants.

        Airflow's task supervisor puts each task runner in a process group of its own, so killing a worker's
        group alone would leave its running tasks behind; a worker that crashes with its machine takes them.
        """
        groups = self._descendant_groups()
        self._signal_group(signal.SIGKILL)
        _kill_groups(groups)
        self.popen.wait(timeout=10)
        self._log_file.close()

    def stop(self, grace: float = 10.0) -> None:
        """
        Stop the process group: SIGTERM, then SIGKILL after a grace period.

        :param grace: seconds between SIGTERM and SIGKILL.
        """
        groups = self._descendant_groups()
        if self.alive():
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=grace)
        # Children that outlive their leader (task runners, uvicorn workers) go too, in their own groups too.
        self._signal_group(signal.SIGKILL)
        _kill_groups(groups)
        if self.alive():
            self.popen.wait(timeout=10)
        self._log_file.close()

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def _descendant_groups(self) -> dict[int, int]:
        """``pid -> process group`` of this process's descendants in groups other than its own and ours."""
        groups = {}
        for pid in descendants(self.popen.pid):
            with contextlib.suppress(OSError):
                groups[pid] = os.getpgid(pid)
        return {pid: group for pid, group in groups.items() if group not in (self.popen.pid, os.getpgrp())}


def descendants(pid: int) -> set[int]:
    """
    Every live descendant of a process (from ``/proc``; empty where there is none).

    :param pid: the ancestor.
    """
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _kill_groups(groups: dict[int, int]) -> None:
    """SIGKILL the groups of ``pid -> group`` whose member is still there, in the same group (no reused id)."""
    for pid, group in groups.items():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == group:
                os.killpg(group, signal.SIGKILL)


class ProcessSet:
    """Every process a fixture started, stopped in reverse order whatever happens."""

    def __init__(self) -> None:
        self.processes: list[ManagedProcess] = []

    def start(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path | None = None
    ) -> ManagedProcess:
        process = ManagedProcess(name, argv, env, log_path, cwd)
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        errors: list[BaseException] = []
        for process in reversed(self.processes):
            try:
                process.stop()
            except BaseException as exc:  # keep stopping the others
                errors.append(exc)
        if errors:
            raise errors[0]
