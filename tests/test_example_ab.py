"""The A/B example DAG, run end to end with ``dag.test()`` against the simulator."""

from __future__ import annotations

import importlib

from airflow_esml.testing import Simulator


def run_ab(sim: Simulator, capsys, **conf):
    sim.cluster.set_infer_seconds_per_doc(0.02)  # 120 docs: 2.4 s on 1 allocation, so 4 clearly win on a busy machine
    for deployment_id in ("my-e5-a", "my-e5-b"):
        sim.cluster.start_deployment("my-e5", deployment_id=deployment_id, number_of_allocations=1, wait=True)
    dag = importlib.import_module("example_dags.esml_ab_test").dag
    run = dag.test(run_conf={"documents": 120, **conf})
    return run, capsys.readouterr().out


def test_ab_test_scales_each_deployment_and_compares_throughput(airflow_db, sim, capsys):
    run, out = run_ab(sim, capsys, allocations_a=1, allocations_b=4)
    assert run.state == "success"
    # each deployment scaled on its own: b gradually 1 -> 3 -> 4 and back (4 -> 2 -> 1), a left at 1, my-e5 untouched
    assert [v for _, v in sim.audit.target_history("my-e5-b")] == [1, 3, 4, 2, 1]
    assert [v for _, v in sim.audit.target_history("my-e5-a")] == [1]
    assert [v for _, v in sim.audit.target_history("my-e5")] == [1]
    inferred = {}
    for event in sim.audit.events("inference"):
        inferred[event.data["deployment_id"]] = inferred.get(event.data["deployment_id"], 0) + event.data["docs"]
    assert inferred == {"my-e5-a": 120, "my-e5-b": 120}
    compare = run.get_task_instance("compare").xcom_pull(task_ids="compare")
    a, b = compare["deployments"]["my-e5-a"], compare["deployments"]["my-e5-b"]
    assert (a["allocations"], b["allocations"]) == (1, 4) and a["docs"] == b["docs"] == 120
    assert b["docs_per_second"] > a["docs_per_second"] and compare["faster"] == "my-e5-b"
    assert a["throughput_last_minute"] >= 120 and b["throughput_last_minute"] >= 120
    assert "faster: my-e5-b" in out


def test_ab_test_refuses_more_than_fits_and_restores(airflow_db, sim, capsys):
    run, _ = run_ab(sim, capsys, allocations_a=4, allocations_b=4)  # 8 processors, my-e5 holds one
    assert run.state == "failed"
    assert sim.audit.events("inference") == []
    assert sim.cluster.target("my-e5-a") == 1 and sim.cluster.target("my-e5-b") == 1
