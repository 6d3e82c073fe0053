"""Fixtures shared by the operator tests."""

from __future__ import annotations

from collections.abc import Iterator
from unittest import mock

import pytest


@pytest.fixture
def stats() -> Iterator[mock.MagicMock]:
    """Airflow's ``Stats``, replaced by a mock that records the metrics a task emits."""
    from airflow.providers.common.compat import sdk

    with mock.patch.object(sdk, "Stats", mock.MagicMock(), create=True) as fake:
        yield fake
