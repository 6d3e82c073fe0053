"""The by-query jobs' pure parts: slicing, ``max_docs`` shares, the leader's merged status."""

from __future__ import annotations

from airflow_esml.testing.docs.byquery import SliceState, in_slice, merge_statuses, share


def test_slices_partition_the_ids() -> None:
    ids = [str(i) for i in range(200)]
    owners = [[s for s in range(3) if in_slice(i, s, 3)] for i in ids]
    assert all(len(o) == 1 for o in owners)
    assert all(sum(1 for o in owners if o == [s]) > 40 for s in range(3))
    assert all(in_slice(i, 0, 1) for i in ids)


def test_max_docs_shares() -> None:
    assert [share(10, s, 3) for s in range(3)] == [4, 3, 3]
    assert share(None, 0, 3) is None


def test_leader_counts_finished_slices_only() -> None:
    done = SliceState(0, 5.0, total=4, created=4, batches=2)
    status = merge_statuses([done, None], None)
    assert (status["total"], status["created"], status["batches"]) == (4, 4, 2)
    assert status["slices"][1] is None and status["slices"][0]["slice_id"] == 0
    assert status["requests_per_second"] == 5.0
    assert merge_statuses([None, None], "by user request")["canceled"] == "by user request"
