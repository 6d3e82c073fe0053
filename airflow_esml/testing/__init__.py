"""A simulator of the Elasticsearch ML trained-model deployment APIs, for tests, demos and local DAG runs.

Never imported by the provider's runtime modules.
"""
