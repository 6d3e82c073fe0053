"""operators of the airflow-esml provider."""
