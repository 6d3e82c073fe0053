"""From an Airflow connection to the keyword arguments of an ``elasticsearch`` client.

Connections of the Elasticsearch provider's ``elasticsearch`` type work unchanged: host (one or several,
comma-separated, with or without a scheme), port, schema (used as the scheme, ``http`` or ``https``),
login and password. Extras are checked against :data:`ALLOWED_EXTRAS` instead of being passed blindly to
the client, so a typo is an error that names the field, not a ``TypeError`` from inside the client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from airflow_esml.core.params import DEFAULT_PORT, DEFAULT_REQUEST_TIMEOUT
from airflow_esml.exceptions import InvalidParameterError

# extra field -> the type it must have
ALLOWED_EXTRAS: dict[str, tuple[type, ...]] = {
    "api_key": (str, list, tuple),
    "cloud_id": (str,),
    "ca_certs": (str,),
    "verify_certs": (bool, str),
    "request_timeout": (int, float, str),
    "kibana_url": (str,),  # for the operators' extra link; not a client argument
}


class ConnectionLike(Protocol):
    conn_id: str
    host: str | None
    port: int | None
    schema: str | None
    login: str | None
    password: str | None


def client_kwargs(conn: ConnectionLike, extras: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``Elasticsearch(...)`` / ``AsyncElasticsearch(...)``.

    Transport-level retries are switched off (``max_retries=0``): the hook retries with exponential
    backoff itself, which the transport does not do for 429 and 5xx answers.
    """
    unknown = sorted(set(extras) - set(ALLOWED_EXTRAS))
    if unknown:
        raise InvalidParameterError(
            f"connection {conn.conn_id!r} has unknown extra field(s) {', '.join(map(repr, unknown))}; "
            f"allowed extras are {', '.join(ALLOWED_EXTRAS)}"
        )
    for name, value in extras.items():
        if not isinstance(value, ALLOWED_EXTRAS[name]):
            raise InvalidParameterError(
                f"connection {conn.conn_id!r}: extra {name!r} must be of type "
                f"{' or '.join(t.__name__ for t in ALLOWED_EXTRAS[name])}, got {type(value).__name__}"
            )
    kwargs: dict[str, Any] = {
        "request_timeout": _positive_float(conn, "request_timeout", extras.get("request_timeout")),
        "verify_certs": _as_bool(conn, extras.get("verify_certs", True)),
        "max_retries": 0,
        "retry_on_status": (),
    }
    if not kwargs["verify_certs"]:
        kwargs["ssl_show_warn"] = False  # the hook logs its own warning once
    if extras.get("ca_certs"):
        kwargs["ca_certs"] = extras["ca_certs"]
    if extras.get("cloud_id"):
        kwargs["cloud_id"] = extras["cloud_id"]
    else:
        kwargs["hosts"] = _hosts(conn)
    if extras.get("api_key"):
        api_key = extras["api_key"]
        kwargs["api_key"] = tuple(api_key) if isinstance(api_key, list) else api_key
    elif conn.login:
        kwargs["basic_auth"] = (conn.login, conn.password or "")
    elif conn.password:
        kwargs["api_key"] = conn.password  # a password without a login is taken as an API key
    return kwargs


def _hosts(conn: ConnectionLike) -> list[str]:
    if not conn.host:
        raise InvalidParameterError(f"connection {conn.conn_id!r} has no host and no 'cloud_id' extra")
    scheme = (conn.schema or "http").lower()
    if scheme not in ("http", "https"):
        raise InvalidParameterError(
            f"connection {conn.conn_id!r}: schema must be 'http' or 'https' (it is used as the URL scheme), "
            f"got {conn.schema!r}"
        )
    hosts = []
    for host in (h.strip() for h in conn.host.split(",") if h.strip()):
        if "://" not in host:
            host = f"{scheme}://{host}"
        if host.count(":") < 2:  # no port in the URL
            host = f"{host}:{conn.port or DEFAULT_PORT}"
        hosts.append(host)
    return hosts


def _as_bool(conn: ConnectionLike, value: bool | str) -> bool:
    if isinstance(value, bool):
        return value
    if value.strip().lower() in ("true", "1", "yes"):
        return True
    if value.strip().lower() in ("false", "0", "no"):
        return False
    raise InvalidParameterError(
        f"connection {conn.conn_id!r}: extra 'verify_certs' must be true or false, got {value!r}"
    )


def _positive_float(conn: ConnectionLike, name: str, value: Any) -> float:
    if value is None:
        return DEFAULT_REQUEST_TIMEOUT
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if number <= 0:
        raise InvalidParameterError(
            f"connection {conn.conn_id!r}: extra {name!r} must be a positive number, got {value!r}"
        )
    return number
