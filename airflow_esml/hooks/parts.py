"""What the role mixins of :class:`~airflow_esml.hooks.ml.ElasticsearchMLHook` use of the hook.

The hook is composed of one mixin per role (``targets.py``, ``stats.py``, ``updates.py``, ``infer.py``,
``capacity.py``); :class:`HookPart` declares, for type checkers only, what each of them may use of the hook:
its clients, its retry policy, its logger and the request helpers. ``hooks/ml.py`` defines them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from elasticsearch import AsyncElasticsearch, Elasticsearch

if TYPE_CHECKING:
    from airflow_esml.hooks.retry import RetryPolicy

ClientT = TypeVar("ClientT", Elasticsearch, AsyncElasticsearch)


class HookPart:
    """The base of a role mixin of :class:`~airflow_esml.hooks.ml.ElasticsearchMLHook` (no behaviour of its own)."""

    if TYPE_CHECKING:
        retry: RetryPolicy
        request_timeout: float

        @property
        def log(self) -> Any: ...

        @property
        def client(self) -> Elasticsearch: ...

        async def aclient(self) -> AsyncElasticsearch: ...

        def _within(self, client: ClientT, deadline: float | None) -> ClientT: ...

        def _keeping(
            self, what: str, fn: Callable[[], Any], statuses: frozenset[int], deadline: float | None = None
        ) -> Any: ...
