"""Small helpers shared by the provider's tests."""

from __future__ import annotations

import asyncio
import importlib
import json
from typing import Any

from airflow.triggers.base import BaseTrigger

from airflow_esml.testing import Simulator


def run_trigger(trigger: BaseTrigger) -> dict[str, Any]:
    """Run a trigger to its first event, as the triggerer would, after a serialize round trip."""
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))

    async def first_event() -> dict[str, Any]:
        async for event in rebuilt.run():
            return dict(event.payload)
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(first_event())


def requests_to(simulator: Simulator, endpoint: str) -> int:
    return len([e for e in simulator.audit.events("request") if e.data.get("endpoint") == endpoint])


def cluster_changes(simulator: Simulator) -> list[Any]:
    """Every change of any deployment's target or adaptive settings."""
    return simulator.audit.events("target_changed") + simulator.audit.events("adaptive_changed")
