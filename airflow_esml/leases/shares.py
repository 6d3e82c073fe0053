"""The arithmetic of shared capacity: what the leases of a deployment hold above its baseline, and their shares.

Pure Python (docs/accounting.md); :meth:`~airflow_esml.leases.document.LeaseDoc.accrued` counts the shares.
"""

from __future__ import annotations

from collections.abc import Sequence

from airflow_esml.core.settings import Settings


def held_floor(baseline: Settings) -> int:
    """The allocations the deployment has with no lease: what capacity is counted above (docs/accounting.md).

    The baseline's count (with adaptive allocations on, the scaler's count when it was recorded), else the minimum
    of its adaptive allocations.
    """
    if baseline.number_of_allocations is not None:
        return baseline.number_of_allocations
    adaptive = baseline.adaptive_allocations
    return (adaptive.min_number_of_allocations if adaptive else None) or 0


def capacity_shares(floor: int, requests: Sequence[int]) -> list[float]:
    """How the allocations held above ``floor`` for ``requests`` (the live leases) are shared among them, per second.

    The deployment holds ``max(requests)``: one layer of allocations from ``floor`` to the smallest request above
    it, the next up to the next request, and so on. Each layer is split equally among the leases that asked for
    it (the Shapley value of this cost, known as the airport problem): a lease pays for what it needs, the part
    it needs together with others is shared, and the shares add up to ``max(requests) - floor``. A request at or
    below ``floor`` holds nothing above it and gets 0.
    """
    shares = [0.0] * len(requests)
    low = floor
    for level in sorted({r for r in requests if r > floor}):
        needing = [i for i, r in enumerate(requests) if r >= level]
        for i in needing:
            shares[i] += (level - low) / len(needing)
        low = level
    return shares
