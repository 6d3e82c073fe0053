"""The arithmetic of shared capacity: the floor leases are counted above, and each lease's share."""

from __future__ import annotations

import pytest

from airflow_esml.core.settings import Settings
from airflow_esml.core.status import AdaptiveAllocations
from airflow_esml.leases.shares import capacity_shares, held_floor


@pytest.mark.parametrize(
    ("floor", "requests", "expected"),
    [
        (1, [3], [2.0]),
        (1, [3, 5], [1.0, 3.0]),  # the layer 1..3 is shared, 3..5 is the second lease's alone
        (1, [4, 4], [1.5, 1.5]),
        (2, [1, 6, 2], [0.0, 4.0, 0.0]),  # at or below the floor: nothing held above it
        (1, [], []),
    ],
)
def test_capacity_shares_split_each_layer_among_the_leases_that_need_it(floor, requests, expected):
    shares = capacity_shares(floor, requests)
    assert shares == pytest.approx(expected)
    assert sum(shares) == pytest.approx(max([floor, *requests]) - floor)


def test_held_floor_is_the_count_else_the_adaptive_minimum():
    assert held_floor(Settings(2)) == 2
    assert held_floor(Settings(None, AdaptiveAllocations(True, 3, 8))) == 3
    assert held_floor(Settings(None, AdaptiveAllocations(True, None, 8))) == 0
