"""Redis as the Celery broker of the distributed e2e test: Debian's ``redis-server`` on a free loopback port."""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.e2e._procs import ManagedProcess, ProcessSet, free_port

#: a broker URL to use instead of starting a server (``redis://[:password@]host:port/db``)
REDIS_URL_ENV = "ESML_E2E_REDIS_URL"
#: the ``redis-server`` binary, when it is not on PATH (.ci/run sets it after installing Debian's package)
REDIS_SERVER_ENV = "ESML_E2E_REDIS_SERVER"


@dataclass(frozen=True)
class RunningRedis:
    """
    A broker for Celery.

    :param url: the broker URL, password included.
    :param password: the password it demands (None for an external broker given by URL).
    :param process: the server process, None for an external broker.
    """

    url: str
    password: str | None
    process: ManagedProcess | None


def redis_server_binary() -> str | None:
    """The ``redis-server`` to start, or None when there is none."""
    configured = os.environ.get(REDIS_SERVER_ENV, "")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    )


def unavailable_reason() -> str | None:
    """Why no broker can be had here, or None."""
    if os.environ.get(REDIS_URL_ENV) or redis_server_binary():
        return None
    return (
        f"no redis-server (install Debian's redis-server package, as .ci/run does, set {REDIS_SERVER_ENV} "
        f"to the binary, or {REDIS_URL_ENV} to a running broker)"
    )


def start_redis(processes: ProcessSet, workdir: Path, timeout: float = 30) -> RunningRedis:
    """
    Start ``redis-server`` on 127.0.0.1 with a random password and no persistence; or use ``ESML_E2E_REDIS_URL``.

    The password is in a configuration file readable by us only, not on the command line.

    :param processes: the set that will stop it.
    :param workdir: folder for its configuration and log.
    :param timeout: seconds to wait until it accepts connections.
    """
    external = os.environ.get(REDIS_URL_ENV, "")
    if external:
        return RunningRedis(url=external, password=None, process=None)
    binary = redis_server_binary()
    if binary is None:
        raise RuntimeError(unavailable_reason())
    port = free_port()
    password = secrets.token_urlsafe(18)
    folder = workdir / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "redis.conf"
    config.touch(mode=0o600)
    config.write_text(
        "\n".join(
            [
                "bind 127.0.0.1",
                f"port {port}",
                "protected-mode yes",
                f"requirepass {password}",
                'save ""',
                "appendonly no",
                f"dir {folder}",
                "daemonize no",
                "loglevel notice",
                "",
            ]
        )
    )
    process = processes.start("redis", [binary, str(config)], dict(os.environ), folder / "redis.log")
    process.wait_for_log(r"Ready to accept connections", timeout)
    return RunningRedis(url=f"redis://:{password}@127.0.0.1:{port}/0", password=password, process=process)
