"""
``[core] hostname_callable`` for the e2e components: one machine, but every worker and triggerer under its own
name (``ESML_E2E_HOSTNAME``), so task instances and triggerer jobs tell which process ran them.
"""

from __future__ import annotations

import os
import socket

HOSTNAME_ENV = "ESML_E2E_HOSTNAME"
#: the value of ``AIRFLOW__CORE__HOSTNAME_CALLABLE`` (the repository root must be on ``PYTHONPATH``)
CALLABLE = "tests.e2e._hostname.hostname"


def hostname() -> str:
    """The process's name from ``ESML_E2E_HOSTNAME``, else the machine's FQDN (Airflow's default)."""
    return os.environ.get(HOSTNAME_ENV) or socket.getfqdn()
