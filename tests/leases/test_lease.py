"""One lease: its id, and its round trip through a document (the adaptive policy of an older one)."""

from __future__ import annotations

from airflow_esml.leases.lease import Lease, lease_id_for
from tests.lease_helpers import lease


def test_lease_ids_name_the_run_and_the_installation():
    assert lease_id_for("dag", "manual__1", "group") == "dag/manual__1/group"
    assert lease_id_for("dag", "manual__1", "group", "team-a") == "team-a:dag/manual__1/group"


def test_a_lease_keeps_its_policy_and_an_old_lease_reads_as_disable():
    assert Lease.from_dict(lease("a", 2).to_dict()).adaptive_policy == "raise_min"
    old = {k: v for k, v in lease("a", 2).to_dict().items() if k != "adaptive_policy"}
    assert Lease.from_dict(old).adaptive_policy == "disable"  # what it was acquired under
