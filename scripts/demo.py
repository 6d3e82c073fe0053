"""``make demo [DAG=...]``: run an example DAG end to end on the embedded simulator and summarise it.

Starts the simulator as its own process (with every example DAG's deployments), initialises a private Airflow
home, runs the DAG with Airflow's own ``airflow dags test``, reads the simulator's audit log to print each
deployment's allocations before, during and after, the time until new allocations were started and the
documents inferred, and ends with the two commands that run the same DAG in your own Airflow. The private
Airflow home is removed at the end (on a failure, after printing the end of Airflow's output).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from airflow_esml.testing.cli import EXAMPLES_ARGS, EXAMPLES_COMMAND

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "example_dags"
DAGS = sorted(path.stem for path in EXAMPLES.glob("esml_*.py"))
DEFAULT_DAG = "esml_batch_inference"
#: Airflow's output shown when the run fails (the rest goes with the temporary Airflow home)
TAIL_LINES = 40


def simulator_args() -> list[str]:
    """The examples' simulator on a free port, with allocations that take 2 s to load, seeded."""
    args = list(EXAMPLES_ARGS)
    args[args.index("--port") + 1] = "0"
    return [*args, "--load-seconds", "2", "--seed", "7"]


def start_simulator() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "airflow_esml.testing.simulator", *simulator_args()],
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
    """Per deployment the DAG scaled: allocations before / during / after and the wait; then the documents."""
    changes = audit(url, "target_changed")
    started = [e for e in audit(url, "route_state") if e["data"].get("state") == "started"]
    lines = []
    for deployment in dict.fromkeys(e["data"].get("deployment_id") for e in changes):
        targets = [e for e in changes if e["data"].get("deployment_id") == deployment]
        values = [int(e["data"]["new"]) for e in targets]
        if len(set(values)) < 2:
            continue  # started at boot and left alone
        line = f"{deployment}: allocations before / during / after: {values[0]} / {max(values)} / {values[-1]}"
        scale_up = next((e for e in targets if int(e["data"]["new"]) > int(e["data"]["old"]) > 0), None)
        ready = [e["at"] for e in started if scale_up is not None and e["at"] >= scale_up["at"]]
        if scale_up is not None and ready:
            line += f"; the new allocations were started {max(ready) - scale_up['at']:.1f}s after the scale-up"
        lines.append(line)
    docs: dict[str, int] = {}
    for event in audit(url, "inference"):
        name = event["data"].get("deployment_id")
        docs[name] = docs.get(name, 0) + int(event["data"].get("docs", 0))
    calls = [e for e in audit(url, "request") if e["data"].get("endpoint") == "infer"]
    if calls and docs:  # from the first request's arrival to the last response
        span = max(e["at"] for e in calls) - min(e["at"] - e["data"]["duration"] for e in calls)
        total = sum(docs.values())
        each = ", ".join(f"{name} {count}" for name, count in docs.items())
        lines.append(f"documents inferred: {total} ({each}) in {span:.2f}s, {total / span:.0f} docs/s")
    return "\n".join(lines) or "no deployment was scaled and no document inferred"


def own_airflow_lines(dag_id: str) -> list[str]:
    """The two commands that run ``dag_id`` in your own Airflow: the simulator, then the DAG."""
    conn = "AIRFLOW_CONN_ELASTICSEARCH_DEFAULT=elasticsearch://127.0.0.1:9200/http"
    return [EXAMPLES_COMMAND, f"{conn} AIRFLOW__CORE__DAGS_FOLDER={EXAMPLES} airflow dags test {dag_id}"]


def results_line(folder: Path) -> str | None:
    """How many results the DAG kept in ``folder``, or None when it kept none."""
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        return None
    count = sum(len(path.read_text().splitlines()) for path in files)
    return f"results kept: {count} JSON lines in {', '.join(path.name for path in files)} (removed with the home)"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("dag_id", nargs="?", default=DEFAULT_DAG, choices=DAGS, help=f"default: {DEFAULT_DAG}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    dag_id = parse_args(argv).dag_id
    home = Path(tempfile.mkdtemp(prefix="esml-demo-airflow-"))
    log = home / "demo.log"
    proc, url = start_simulator()
    ok = False
    try:
        print(f"simulator listening on {url}; temporary Airflow home {home} (removed at the end)")
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLES),
            "AIRFLOW_CONN_ELASTICSEARCH_DEFAULT": json.dumps(
                {"conn_type": "elasticsearch", "host": url.split("://")[1].split(":")[0],
                 "port": int(url.rsplit(":", 1)[1]), "schema": "http"}
            ),
        }  # fmt: skip
        print("initialising the Airflow metadata database ...")
        if run_airflow(env, "db", "migrate", log=log):
            print("airflow db migrate failed")
            return 1
        print(f"running {dag_id} with airflow dags test ...")
        started = time.monotonic()
        code = run_airflow(env, "dags", "test", dag_id, log=log)
        state = run_state(log)
        print(f"airflow dags test finished in {time.monotonic() - started:.1f}s: DAG run {state}")
        print(summarise(url))
        kept = results_line(home / dag_id)  # esml_batch_inference keeps its results in the Airflow home
        if kept:
            print(kept)
        ok = code == 0 and state == "successful"
        return 0 if ok else 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if not ok and log.exists():
            print(f"--- the last {TAIL_LINES} lines of Airflow's output ---")
            print("\n".join(log.read_text(errors="replace").splitlines()[-TAIL_LINES:]))
        shutil.rmtree(home, ignore_errors=True)
        if ok:
            print(f"\nTo run {dag_id} in your own Airflow, start the simulator in one shell and the DAG in another:")
            print("\n".join(own_airflow_lines(dag_id)))


if __name__ == "__main__":
    raise SystemExit(main())
