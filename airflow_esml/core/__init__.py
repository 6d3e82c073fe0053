"""Pure decisions: what a deployment's stats say, what to ask of it, and whether a wait is over.

Nothing here talks to Elasticsearch or Airflow's runtime; the hooks, operators, sensors and triggers
feed it the API's responses and act on its answers.
"""
