"""What one operation of the lease store did, as its XCom result (a full one is in ``test_store.py``)."""

from __future__ import annotations

import json

from airflow_esml.leases.outcome import LeaseOutcome


def test_the_outcome_of_nothing_to_do_is_json_too() -> None:
    data = LeaseOutcome("my-e5", "x", None, None, None).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["target"] is None and data["number_of_allocations"] is None and data["expires_at"] is None
