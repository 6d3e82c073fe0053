"""The simulator's route handlers: the Elasticsearch endpoints it serves, and its ``/_sim/`` control routes.

- ``ml``: the ML trained-model endpoints, ``_nodes``, ``_ml/info`` and ``_cluster/settings``;
  ``ml_params`` parses their requests per version, ``ml_reads`` renders the read-only ones;
- ``documents``: the document, index and search APIs (the in-memory store and its model are in ``testing/docs``);
- ``bulk``: ``_bulk``; ``ingest``: ``_ingest/pipeline``; ``reindex``: ``_reindex`` and ``_update_by_query``;
  ``tasks``: ``_tasks``;
- ``info``: ``GET /`` and ``HEAD /``; ``control``: the ``/_sim/`` routes (not Elasticsearch APIs);
- ``request_values``: query-string and JSON-body values with Elasticsearch's parse errors.
"""
