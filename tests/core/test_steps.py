from __future__ import annotations

import itertools

import pytest

from airflow_esml.core.steps import Step, plan_steps, stopped_message


def ends(current: int, target: int, max_step: int | None) -> list[tuple[int, int]]:
    return [(s.start, s.end) for s in plan_steps(current, target, max_step)]


@pytest.mark.parametrize(
    ("current", "target", "max_step", "expected"),
    [
        (2, 8, 2, [(2, 4), (4, 6), (6, 8)]),
        (8, 2, 2, [(8, 6), (6, 4), (4, 2)]),
        (1, 8, 3, [(1, 4), (4, 6), (6, 8)]),  # even steps: 3, 2, 2 rather than 3, 3, 1
        (8, 1, 3, [(8, 5), (5, 3), (3, 1)]),
        (1, 2, 5, [(1, 2)]),
        (1, 8, None, [(1, 8)]),
        (4, 4, 2, []),
    ],
)
def test_plan_steps(current, target, max_step, expected):
    assert ends(current, target, max_step) == expected


@pytest.mark.parametrize(("current", "target", "max_step"), [(1, 30, 4), (30, 1, 7), (3, 4, 1), (17, 2, 1)])
def test_steps_are_contiguous_and_never_larger_than_max_step(current, target, max_step):
    steps = plan_steps(current, target, max_step)
    assert steps[0].start == current and steps[-1].end == target
    assert all(a.end == b.start for a, b in itertools.pairwise(steps))
    assert all(0 < abs(s.end - s.start) <= max_step for s in steps)
    assert [s.index for s in steps] == list(range(1, len(steps) + 1)) and steps[-1].last


def test_step_describes_itself_and_round_trips():
    step = Step(2, 3, 4, 6)
    assert step.describe() == "step 2 of 3: 4 -> 6 allocations"
    assert Step.from_dict(step.to_dict()) == step and not step.last


def test_stopped_message_says_where():
    text = stopped_message("my-e5", Step(2, 3, 4, 6), goal=8, target_now=6, started=5, reason="node failed")
    assert text == (
        "my-e5: gradual scaling to 8 allocations stopped at step 2 of 3: 4 -> 6 allocations; "
        "the deployment is left at target 6, 5 started: node failed"
    )
