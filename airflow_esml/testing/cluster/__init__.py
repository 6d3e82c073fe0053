"""The simulated Elasticsearch ML cluster: ML nodes, models, deployments, placement, inference.

:class:`Cluster` is the face; see ``docs/simulator-cluster.md`` for every module and modelled behaviour.
Knows nothing of HTTP or of the handlers that serve it (``airflow_esml.testing.api``).
"""

from __future__ import annotations

from airflow_esml.testing.cluster.cluster import MAX_DEPLOYMENTS, Cluster

__all__ = ["MAX_DEPLOYMENTS", "Cluster"]
