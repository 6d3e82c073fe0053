"""``python -m airflow_esml.testing``: the simulator's command line (see :mod:`airflow_esml.testing.cli`)."""

from __future__ import annotations

from airflow_esml.testing.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
