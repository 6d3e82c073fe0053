"""The simulator's document model: indices and their documents, the store and its write path, queries, ingest
pipelines, ``semantic_text``, the by-query jobs (``_reindex``, ``_update_by_query``) and the task manager that
runs them.

Knows no HTTP: the handlers in :mod:`airflow_esml.testing.api` serve it. Inference goes through the cluster
model (:mod:`airflow_esml.testing.cluster.ingest_inference`), so ingest shares the deployments' capacity.
"""
