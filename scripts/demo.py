"""``make demo``: run ``esml_batch_inference`` end to end on the embedded simulator and summarise it.

Starts the simulator as its own process, initialises a private Airflow home, runs the DAG with Airflow's own
``airflow dags test`` and reads the simulator's audit log to print allocations before, during and after, the
time until the allocations were started, and the documents inferred.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DAG_ID = "esml_batch_inference"
DEPLOYMENT = "my-e5"


def start_simulator() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_esml.testing.simulator", "--port", "0",
         "--ml-node", "ml-node-1:4", "--ml-node", "ml-node-2:4", "--model", DEPLOYMENT,
         "--deploy", f"{DEPLOYMENT}:1", "--load-seconds", "2", "--seed", "7"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"the simulator did not start: {line!r}")
    return proc, line.removeprefix("listening on ")


def audit(url: str, kind: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/_sim/audit?kind={kind}", timeout=10) as response:
        return list(json.load(response)["events"])


def run_airflow(env: dict[str, str], *args: str, log: Path) -> int:
    with log.open("a") as out:
        return subprocess.run([sys.executable, "-m", "airflow", *args], env=env, stdout=out, stderr=out).returncode


def run_state(log: Path) -> str:
    """``successful`` or ``failed``, from Airflow's "Marking run ... <state>" line."""
    marks = [line for line in log.read_text().splitlines() if "Marking run <DagRun" in line]
    return marks[-1].split("> ")[-1].split()[0] if marks else "unknown (no run was marked)"


def summarise(url: str) -> str:
    targets = [e for e in audit(url, "target_changed") if e["data"].get("deployment_id") == DEPLOYMENT]
    started = [e for e in audit(url, "route_state") if e["data"].get("state") == "started"]
    inferences = [e for e in audit(url, "inference") if e["data"].get("deployment_id") == DEPLOYMENT]
    values = [int(e["data"]["new"]) for e in targets]
    scale_up = next((e for e in targets if int(e["data"]["new"]) > int(e["data"]["old"]) > 0), None)
    lines = [f"allocations before / during / after: {values[0]} / {max(values)} / {values[-1]}"]
    if scale_up is not None:
        ready = [e["at"] for e in started if e["at"] >= scale_up["at"]]
        if ready:
            lines.append(f"time until the new allocations were started: {max(ready) - scale_up['at']:.1f}s")
    docs = sum(int(e["data"].get("docs", 0)) for e in inferences)
    calls = [e for e in audit(url, "request") if e["data"].get("endpoint") == "infer"]
    if calls:  # from the first request's arrival to the last response
        span = max(e["at"] for e in calls) - min(e["at"] - e["data"]["duration"] for e in calls)
        lines.append(f"documents inferred: {docs} in {span:.2f}s, {docs / span:.0f} docs/s")
    return "\n".join(lines)


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="esml-demo-airflow-"))
    log = home / "demo.log"
    proc, url = start_simulator()
    try:
        print(f"simulator listening on {url}; Airflow home {home}; Airflow output in {log}")
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "AIRFLOW_CONN_ELASTICSEARCH_DEFAULT": json.dumps(
                {"conn_type": "elasticsearch", "host": url.split("://")[1].split(":")[0],
                 "port": int(url.rsplit(":", 1)[1]), "schema": "http"}
            ),
        }  # fmt: skip
        print("initialising the Airflow metadata database ...")
        if run_airflow(env, "db", "migrate", log=log):
            print(f"airflow db migrate failed; see {log}")
            return 1
        print(f"running {DAG_ID} with airflow dags test ...")
        started = time.monotonic()
        code = run_airflow(env, "dags", "test", DAG_ID, log=log)
        state = run_state(log)
        print(f"airflow dags test finished in {time.monotonic() - started:.1f}s: DAG run {state}")
        print(summarise(url))
        return 0 if code == 0 and state == "successful" else 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    raise SystemExit(main())
