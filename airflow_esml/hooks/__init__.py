"""hooks of the airflow-esml provider."""
