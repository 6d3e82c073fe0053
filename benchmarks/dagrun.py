"""``python -m benchmarks.dagrun '<json>'``: one ``dag.test()`` of an example DAG, in its own process.

The parent (table 5) gives the Airflow home (its metadata DB already migrated) and the connection in the
environment, since Airflow reads them when it is imported. The config names the DAG, its ``run_conf``, the
task ids whose XCom results to return, and the file the result goes to (JSON): the run's state, its
``dag.test()`` wall time and those XCom results.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any


def main(config: dict[str, Any]) -> int:
    dag = importlib.import_module(f"example_dags.{config['dag']}").dag
    started = time.time()
    run = dag.test(run_conf=config.get("run_conf") or {})
    ended = time.time()
    xcoms = {}
    for task_id in config.get("xcom_tasks", []):
        ti = run.get_task_instance(task_id)
        xcoms[task_id] = ti.xcom_pull(task_ids=task_id) if ti is not None else None
    result = {"state": str(run.state), "started": started, "ended": ended, "xcoms": xcoms}
    Path(config["result_path"]).write_text(json.dumps(result, default=str))
    return 0 if str(run.state) == "success" else 1


if __name__ == "__main__":
    raise SystemExit(main(json.loads(sys.argv[1])))
