"""Adaptive allocations: the settings object, its merge and validation, and a load-driven scaler.

The request field is parsed in :mod:`airflow_esml.testing.api.ml_params`. Sources (elastic/elasticsearch):
x-pack/plugin/core/src/main/java/org/elasticsearch/xpack/core/ml/inference/assignment/AdaptiveAllocationsSettings.java
x-pack/plugin/ml/src/main/java/org/elasticsearch/xpack/ml/inference/adaptiveallocations/AdaptiveAllocationsScaler.java
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

SCALE_UP_THRESHOLD = 0.9
SCALE_DOWN_THRESHOLD = 0.85
MAX_WITHOUT_LIMIT = 32


@dataclass(frozen=True)
class AdaptiveSettings:
    """``adaptive_allocations``; ``None`` fields are unset."""

    enabled: bool | None = None
    min_number_of_allocations: int | None = None
    max_number_of_allocations: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """As written by Elasticsearch: ``enabled`` always (false when unset), bounds only when set."""
        out: dict[str, Any] = {"enabled": bool(self.enabled)}
        if self.min_number_of_allocations is not None:
            out["min_number_of_allocations"] = self.min_number_of_allocations
        if self.max_number_of_allocations is not None:
            out["max_number_of_allocations"] = self.max_number_of_allocations
        return out

    def errors(self) -> list[str]:
        """The validation messages of these settings (empty when valid)."""
        low, high = self.min_number_of_allocations, self.max_number_of_allocations
        found = []
        if low is not None and low < 0:
            found.append("[min_number_of_allocations] must be a non-negative integer or null")
        if high is not None and high < 1:
            found.append("[max_number_of_allocations] must be a positive integer or null")
        if low is not None and high is not None and low > high:
            found.append("[min_number_of_allocations] must not be larger than [max_number_of_allocations]")
        return found

    def initial_allocations(self) -> int:
        """Allocations at start: ``min`` if > 0, otherwise 1."""
        low = self.min_number_of_allocations
        return low if low is not None and low > 0 else 1

    def clamp(self, value: int) -> int:
        """``value`` bounded by ``[min, max]`` (no max: 32)."""
        low = self.min_number_of_allocations or 0
        high = self.max_number_of_allocations or MAX_WITHOUT_LIMIT
        return max(low, min(high, value))


def from_fields(fields: dict[str, Any]) -> AdaptiveSettings:
    """Settings made of the parsed ``fields``."""
    return AdaptiveSettings(**fields)


def merge(existing: AdaptiveSettings | None, fields: dict[str, Any]) -> AdaptiveSettings:
    """Merge a partial update into the existing settings: present keys win, JSON null clears a bound."""
    return replace(existing or AdaptiveSettings(), **fields)


@dataclass
class ScalerConfig:
    """Timings of the scaler (Elasticsearch: 10 s samples, 5 min scale-down cooldown, 15 min / 24 h to zero)."""

    interval: float = 10.0
    scale_down_cooldown: float = 300.0
    scale_to_zero_after: float = 24 * 3600.0


@dataclass
class ScalerState:
    """Per-deployment scaler memory."""

    next_eval: float
    last_scale_up: float = -math.inf
    started_at: float = 0.0


def desired_allocations(
    settings: AdaptiveSettings,
    current: int,
    load: float,
    idle_seconds: float,
    since_scale_up: float,
    config: ScalerConfig,
) -> int:
    """The scaler's new target.

    :param settings: the enabled settings.
    :param current: the current target.
    :param load: estimated busy allocations over the last sample (docs x service time / interval / threads).
    :param idle_seconds: time since the last inference request.
    :param since_scale_up: time since the scaler last scaled up.
    :param config: timings.
    """
    wanted = max(current, 1)
    while load > wanted * SCALE_UP_THRESHOLD:
        wanted += 1
    while wanted > 1 and load < (wanted - 1) * SCALE_DOWN_THRESHOLD:
        wanted -= 1
    wanted = settings.clamp(wanted)
    if wanted < current and since_scale_up < config.scale_down_cooldown:
        wanted = current
    low = settings.min_number_of_allocations
    if (low is None or low == 0) and idle_seconds >= config.scale_to_zero_after:
        wanted = 0
    return wanted
