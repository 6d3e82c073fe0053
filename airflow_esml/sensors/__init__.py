"""sensors of the airflow-esml provider."""
