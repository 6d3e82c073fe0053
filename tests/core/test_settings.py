"""The one settings type and its ``_update`` body, shared by the operator's plan and the lease model."""

from __future__ import annotations

import pytest

from airflow_esml.core.settings import Settings
from airflow_esml.core.status import AdaptiveAllocations, DeploymentStatus

ADAPTIVE = AdaptiveAllocations(True, 1, 4)


def status(target: int, adaptive: AdaptiveAllocations | None = None) -> DeploymentStatus:
    return DeploymentStatus(
        "my-e5", "my-e5", "started", target, target, "fully_allocated", adaptive_allocations=adaptive
    )


def test_update_body_for_each_kind_of_change():
    assert Settings(4).update_body(status(4)) is None
    assert Settings(4).update_body(status(1)) == {"number_of_allocations": 4}
    # a fixed count on an adaptive deployment switches adaptive allocations off in the same call
    assert Settings(4).update_body(status(2, ADAPTIVE)) == {
        "number_of_allocations": 4,
        "adaptive_allocations": {"enabled": False},
    }
    # restoring an adaptive baseline sends only the adaptive settings (the scaler owns the count)
    assert Settings(2, ADAPTIVE).update_body(status(4)) == {"adaptive_allocations": ADAPTIVE.to_dict()}
    assert Settings(2, ADAPTIVE).update_body(status(3, ADAPTIVE)) is None


def test_adaptive_settings_asked_for_alone_are_sent_alone():
    off = AdaptiveAllocations(False)
    assert Settings(adaptive_allocations=off).update_body(status(3, ADAPTIVE)) == {
        "adaptive_allocations": off.to_dict()
    }
    assert Settings(adaptive_allocations=off).update_body(status(3, off)) is None


@pytest.mark.parametrize(
    ("settings", "text"),
    [
        (Settings(4), "4 allocations"),
        (Settings(2, ADAPTIVE), "adaptive allocations (min 1, max 4)"),
        (Settings(2, AdaptiveAllocations(False, 1, 4)), "2 allocations"),
        (Settings(adaptive_allocations=AdaptiveAllocations(False)), "adaptive allocations off (min None, max None)"),
    ],
)
def test_describe_and_round_trip(settings, text):
    assert settings.describe() == text
    assert Settings.from_dict(settings.to_dict()) == settings


def test_the_adaptive_form_of_a_fixed_count_keeps_exactly_that_count():
    fixed = Settings(3).adaptive_form()
    assert fixed == Settings(3, AdaptiveAllocations(True, 3, 3))
    assert fixed.update_body(status(1)) == {
        "adaptive_allocations": {"enabled": True, "min_number_of_allocations": 3, "max_number_of_allocations": 3}
    }
    switched_off = Settings(2, AdaptiveAllocations(False, 0, 8)).adaptive_form()
    assert switched_off.adaptive_allocations == AdaptiveAllocations(True, 2, 2)  # the bounds were not in force
    on = Settings(None, AdaptiveAllocations(True, 1, 4))
    assert on.adaptive_form() is on
    assert Settings(None, AdaptiveAllocations(False, 1, 4)).adaptive_form() == Settings(
        None, AdaptiveAllocations(True, 1, 4)
    )


def test_settings_match_ignores_the_count_under_adaptive_allocations():
    assert Settings(1, ADAPTIVE).matches(status(3, ADAPTIVE))
    assert not Settings(3).matches(status(3, ADAPTIVE))
    assert Settings(3, AdaptiveAllocations(False)).matches(status(3, AdaptiveAllocations(False)))
