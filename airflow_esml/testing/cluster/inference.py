"""Inference on a deployment: workers, per-node queues and the stats counters.

Every started route contributes ``current_allocations x threads_per_allocation`` workers. Each
document takes the service time on the worker that frees up first; the schedule is fixed when the
request arrives (documents already queued keep their worker even if allocations change later).
Counters are credited when a document completes, per node, in time order.
"""

from __future__ import annotations

import hashlib
import heapq
import struct
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

WINDOW_SECONDS = 60.0
EMBEDDING_DIMS = 8
#: approximate bytes one cached result takes (the cache holds ``cache_size`` / this many inputs)
CACHE_ENTRY_BYTES = 4096


@dataclass
class NodeCounters:
    """Live stats of the process on one node."""

    inference_count: int = 0
    total_ms: float = 0.0
    peak: int = 0
    last_access: float | None = None
    rejected: int = 0
    timeouts: int = 0
    errors: int = 0
    window: deque[tuple[float, float]] = field(default_factory=deque)
    waiting: list[float] = field(default_factory=list)
    cache_hits: int = 0
    hit_window: deque[float] = field(default_factory=deque)

    def trim(self, now: float) -> None:
        while self.window and self.window[0][0] <= now - WINDOW_SECONDS:
            self.window.popleft()
        while self.hit_window and self.hit_window[0] <= now - WINDOW_SECONDS:
            self.hit_window.popleft()
        while self.waiting and self.waiting[0] <= now:
            heapq.heappop(self.waiting)


class QueueFullError(Exception):
    """A node's queue cannot take the request's documents.

    :param node_id: the node whose queue is full.
    """

    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.node_id = node_id


class InferenceEngine:
    """Workers, queues and counters of one deployment."""

    def __init__(self) -> None:
        self._free_at: dict[tuple[str, int], float] = {}
        self._done: list[tuple[float, int, str, float]] = []
        self._seq = 0
        self.nodes: dict[str, NodeCounters] = {}
        self.last_request: float | None = None

    def set_workers(self, now: float, slots: Mapping[str, int]) -> None:
        """Make the worker set ``slots`` (node id -> workers); kept workers keep their schedule.

        :param now: the instant of the change.
        :param slots: workers per node.
        """
        wanted = {(node, i) for node, count in slots.items() for i in range(count)}
        self._free_at = {key: self._free_at.get(key, now) for key in sorted(wanted)}
        for node in slots:
            self.nodes.setdefault(node, NodeCounters())

    def worker_count(self) -> int:
        return len(self._free_at)

    def drop_node(self, node_id: str) -> None:
        """Forget a node's counters (its route was removed)."""
        self.nodes.pop(node_id, None)

    def schedule(self, now: float, docs: int, service: float, capacity: int) -> float:
        """Queue ``docs`` documents; return the instant the last one completes.

        :param now: arrival instant.
        :param docs: number of documents.
        :param service: seconds per document.
        :param capacity: per-node queue capacity (documents waiting for a worker).
        :raises QueueFullError: when a node's waiting documents would exceed ``capacity``.
        """
        heap = [(free, key) for key, free in self._free_at.items()]
        heapq.heapify(heap)
        placed: list[tuple[float, float, str]] = []
        new_waiting: dict[str, int] = {}
        for _ in range(docs):
            free, key = heapq.heappop(heap)
            start = max(now, free)
            end = start + service
            placed.append((start, end, key[0]))
            if start > now:
                new_waiting[key[0]] = new_waiting.get(key[0], 0) + 1
            heapq.heappush(heap, (end, key))
        for node_id, extra in new_waiting.items():
            counters = self.nodes.setdefault(node_id, NodeCounters())
            counters.trim(now)
            if len(counters.waiting) + extra > capacity:
                raise QueueFullError(node_id)
        for free, key in heap:
            self._free_at[key] = free
        for start, end, node_id in placed:
            if start > now:
                heapq.heappush(self.nodes[node_id].waiting, start)
            self._seq += 1
            heapq.heappush(self._done, (end, self._seq, node_id, service))
        self.last_request = now
        return max((end for _, end, _ in placed), default=now)

    def complete_until(self, until: float) -> None:
        """Credit the counters of every document completed by ``until``, in time order."""
        while self._done and self._done[0][0] <= until:
            end, _, node_id, service = heapq.heappop(self._done)
            counters = self.nodes.get(node_id)
            if counters is None:
                continue
            counters.inference_count += 1
            counters.total_ms += service * 1000.0
            counters.last_access = end
            counters.window.append((end, service * 1000.0))
            counters.trim(end)
            counters.peak = max(counters.peak, len(counters.window))

    def record_cache_hits(self, node_id: str, now: float, hits: int) -> None:
        """Count ``hits`` documents of a request as answered from the node's inference cache."""
        counters = self.nodes.setdefault(node_id, NodeCounters())
        counters.cache_hits += hits
        counters.hit_window.extend([now] * hits)

    def busy_until(self) -> float | None:
        """When the last scheduled document completes (``None`` when idle)."""
        return max((end for end, *_ in self._done), default=None)

    def demand_seconds(self, since: float, until: float) -> float:
        """Work done in ``(since, until]`` plus the work still queued or running (the scaler's load sample).

        Call after :meth:`complete_until` ``(until)``.
        """
        done = sum(ms for c in self.nodes.values() for end, ms in c.window if since < end <= until) / 1000.0
        return done + sum(service for end, _, _, service in self._done if end > until)


def cache_lookup(cache: dict[str, None], cache_bytes: int, texts: list[str]) -> int:
    """How many ``texts`` an LRU inference cache of ``cache_bytes`` already holds; then add them all.

    A text seen earlier in the same request is a hit too (the native process answers documents one by one).
    """
    if cache_bytes <= 0:
        return 0
    capacity = max(1, cache_bytes // CACHE_ENTRY_BYTES)
    hits = 0
    for text in texts:
        if text in cache:
            hits += 1
            del cache[text]
        cache[text] = None
        if len(cache) > capacity:
            del cache[next(iter(cache))]
    return hits


def fake_result(text: Any, dims: int = EMBEDDING_DIMS) -> dict[str, Any]:
    """A deterministic text-embedding result derived from a hash of the input text."""
    digest = hashlib.sha256(str(text).encode()).digest()
    values = struct.unpack(f">{dims}H", digest[: 2 * dims])
    return {"predicted_value": [round(v / 65535.0 * 2 - 1, 6) for v in values]}
