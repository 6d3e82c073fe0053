"""The metadata database for the end-to-end Airflow: a throwaway PostgreSQL database, else SQLite."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

#: Maintenance URL of a PostgreSQL server whose role may CREATEDB and CREATEROLE (see .ci/run).
DATABASE_URL_ENV = "ESML_E2E_DATABASE_URL"


@dataclass(frozen=True)
class MetadataDatabase:
    """
    Where Airflow keeps its metadata for one test session.

    :param backend: ``postgresql`` or ``sqlite``.
    :param sql_alchemy_conn: value for ``[database] sql_alchemy_conn``.
    :param password: the database password, a secret the tests look for in logs (None for SQLite).
    """

    backend: str
    sql_alchemy_conn: str
    password: str | None


def _postgres_admin(url: str) -> Any:
    import psycopg2

    connection = psycopg2.connect(url, connect_timeout=5)
    connection.autocommit = True
    return connection


@contextlib.contextmanager
def provision(workdir: Path) -> Iterator[MetadataDatabase]:
    """
    Yield a fresh metadata database and drop it afterwards.

    On PostgreSQL (when ``ESML_E2E_DATABASE_URL`` is set and reachable) a new role with a random password
    owns a new database; both are dropped at the end. Otherwise an SQLite file under ``workdir``.

    :param workdir: folder for the SQLite file.
    """
    admin_url = os.environ.get(DATABASE_URL_ENV, "")
    admin = None
    if admin_url:
        try:
            admin = _postgres_admin(admin_url)
        except Exception as exc:  # unreachable server: fall back, say why
            print(f"e2e: {DATABASE_URL_ENV} is set but unreachable ({type(exc).__name__}); using SQLite")
    if admin is None:
        yield MetadataDatabase("sqlite", f"sqlite:///{workdir / 'airflow.db'}", None)
        return
    name = f"esml_e2e_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(18)
    parts = urlsplit(admin_url)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE ROLE {name} LOGIN PASSWORD %s", (password,))
            cursor.execute(f"GRANT {name} TO CURRENT_USER")  # PostgreSQL 15 needs it to hand over the DB
            cursor.execute(f"CREATE DATABASE {name} OWNER {name}")
        host = f"{parts.hostname}:{parts.port or 5432}"
        yield MetadataDatabase("postgresql", f"postgresql+psycopg2://{name}:{password}@{host}/{name}", password)
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            cursor.execute(f"DROP ROLE IF EXISTS {name}")
        admin.close()
