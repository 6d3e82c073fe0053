"""Plan gradual scaling: from the current allocation count to the target in steps no larger than ``max_step``.

Pure Python. The operator issues one update per step and waits for each step's allocations before the next
(:class:`~airflow_esml.operators.deployment.UpdateDeploymentOperator` with ``max_step``)..
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from airflow_esml.core.params import positive_int


@dataclass(frozen=True)
class Step:
    """One update of a gradual change.

    :param index: 1-based position in the plan.
    :param total: number of steps in the plan.
    :param start: the target before this step.
    :param end: the target this step sets.
    """

    index: int
    total: int
    start: int
    end: int

    @property
    def last(self) -> bool:
        return self.index == self.total

    def describe(self) -> str:
        """``step 2 of 3: 4 -> 6 allocations``."""
        return f"step {self.index} of {self.total}: {self.start} -> {self.end} allocations"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        return cls(int(data["index"]), int(data["total"]), int(data["start"]), int(data["end"]))


def plan_steps(current: int, target: int, max_step: int | None) -> list[Step]:
    """The steps from ``current`` to ``target``, each moving at most ``max_step`` allocations.

    Steps are as even as possible (8 -> 1 with ``max_step=3`` gives 8 -> 5 -> 3 -> 1, not 8 -> 5 -> 2 -> 1),
    so no step is needlessly small. No change gives no steps; no ``max_step`` gives one step.

    :param current: the deployment's target now.
    :param target: the target wanted at the end.
    :param max_step: the largest change of one step; None means a single step.
    """
    current = positive_int("current number_of_allocations", current, minimum=0)
    target = positive_int("number_of_allocations", target, minimum=0)
    distance = abs(target - current)
    if distance == 0:
        return []
    if max_step is None:
        return [Step(1, 1, current, target)]
    if max_step < 1:
        raise ValueError(f"max_step must be a positive integer, got {max_step}")
    count = -(-distance // max_step)  # ceil
    sign = 1 if target > current else -1
    base, extra = divmod(distance, count)
    steps: list[Step] = []
    position = current
    for index in range(1, count + 1):
        size = base + (1 if index <= extra else 0)
        steps.append(Step(index, count, position, position + sign * size))
        position += sign * size
    return steps


def stopped_message(
    deployment_id: str, step: Step, *, goal: int, target_now: int, started: int | None, reason: str
) -> str:
    """Where a gradual change stopped, for the task's error.

    :param deployment_id: the deployment being scaled.
    :param step: the step that failed.
    :param goal: the count the whole plan was heading for.
    :param target_now: the deployment's target when it stopped (``step.start`` if the step's update failed).
    :param started: the allocations known to be started, if known.
    :param reason: what went wrong.
    """
    seen = "" if started is None else f", {started} started"
    return (
        f"{deployment_id}: gradual scaling to {goal} allocations stopped at {step.describe()}; "
        f"the deployment is left at target {target_now}{seen}: {reason}"
    )
