"""triggers of the airflow-esml provider."""
