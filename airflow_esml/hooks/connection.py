"""From an Airflow connection to the keyword arguments of an ``elasticsearch`` client.

Connections of the Elasticsearch provider's ``elasticsearch`` type work unchanged: host (one or several,
comma-separated, with or without a scheme), port, schema (used as the scheme, ``http`` or ``https``),
login and password, and the extras that provider documents (``http_compress``, ``timeout``) or passes on
to the client. Each extra is looked up in :data:`EXTRAS`, checked and converted (``"true"`` and ``"30"`` as
an ``AIRFLOW_CONN_*`` URI gives them are read as ``True`` and ``30.0``), instead of being passed blindly to
the client, so a typo is an error that names the field, not a ``TypeError`` from inside the client.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from airflow_esml.core.params import DEFAULT_PORT, DEFAULT_REQUEST_TIMEOUT
from airflow_esml.exceptions import InvalidParameterError


class ConnectionLike(Protocol):
    conn_id: str
    host: str | None
    port: int | None
    schema: str | None
    login: str | None
    password: str | None


@dataclass(frozen=True)
class Extra:
    """What one connection extra may hold and what the client gets from it.

    :param types: the JSON types the value may have.
    :param client_arg: the ``Elasticsearch(...)`` keyword it sets; ``None`` when it is not passed to the client.
    :param convert: turns the checked value into the client's value, ``None`` for "not set" (raises
        ``InvalidParameterError``).
    :param secret: the value is a credential and is never quoted in a message.
    """

    types: tuple[type, ...]
    client_arg: str | None
    convert: Callable[[str, str, Any], Any] | None = None
    secret: bool = False


def _fail(conn_id: str, name: str, rule: str, value: Any, secret: bool = False) -> InvalidParameterError:
    shown = f"a {type(value).__name__} of another form" if secret else repr(value)
    return InvalidParameterError(f"connection {conn_id!r}: extra {name!r} must be {rule}, got {shown}")


def to_bool(conn_id: str, name: str, value: Any) -> bool:
    """A JSON boolean or one of ``true/false/1/0/yes/no`` (any case), as a URI's query gives it."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise _fail(conn_id, name, "true or false", value)


def to_positive_float(conn_id: str, name: str, value: Any) -> float:
    """A finite number of seconds above 0 (a number or its text)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number <= 0:
        raise _fail(conn_id, name, "a positive number", value)
    return number


def to_timeout(conn_id: str, name: str, value: Any) -> float | None:
    """The Elasticsearch provider's ``timeout`` extra: seconds, or ``false`` (its documented default) for none."""
    return None if value is False else to_positive_float(conn_id, name, value)


def to_positive_int(conn_id: str, name: str, value: Any) -> int:
    """An integer above 0 (an int or ASCII digits)."""
    text = value.strip() if isinstance(value, str) else None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if text and text.isascii() and text.isdigit() and int(text) > 0:
        return int(text)
    raise _fail(conn_id, name, "a positive integer", value)


def to_credential(conn_id: str, name: str, value: Any) -> str | tuple[str, str]:
    """A string, or a pair of strings (``[id, key]`` / ``[user, password]``)."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, str) for v in value):
        return (value[0], value[1])
    raise _fail(conn_id, name, "a string or a list of two strings", value, secret=True)


def to_headers(conn_id: str, name: str, value: Any) -> dict[str, str]:
    """An object of header names to string values."""
    if all(isinstance(v, str) for v in value.values()):
        return dict(value)
    raise _fail(conn_id, name, "an object of strings", value)


#: every extra a connection may have. Those of the ``elasticsearch`` connection type documented by the
#: Elasticsearch provider (``http_compress``, ``timeout``) and the ``Elasticsearch(...)`` arguments that
#: provider's hook passes on to the client (TLS, authentication, headers, sniffing) set the same client
#: option here; a few are accepted and not passed on (see :data:`NOT_PASSED_ON`).
EXTRAS: dict[str, Extra] = {
    # documented by apache-airflow-providers-elasticsearch (connections/elasticsearch.rst)
    "http_compress": Extra((bool, str), "http_compress", to_bool),
    "timeout": Extra((bool, int, float, str), "request_timeout", to_timeout),
    # arguments of elasticsearch.Elasticsearch
    "request_timeout": Extra((int, float, str), "request_timeout", to_positive_float),
    "api_key": Extra((str, list, tuple), "api_key", to_credential, secret=True),
    "basic_auth": Extra((str, list, tuple), "basic_auth", to_credential, secret=True),
    "http_auth": Extra((str, list, tuple), "basic_auth", to_credential, secret=True),  # the old name
    "bearer_auth": Extra((str,), "bearer_auth", secret=True),
    "cloud_id": Extra((str,), "cloud_id"),
    "verify_certs": Extra((bool, str), "verify_certs", to_bool),
    "ca_certs": Extra((str,), "ca_certs"),
    "client_cert": Extra((str,), "client_cert"),
    "client_key": Extra((str,), "client_key"),
    "ssl_assert_hostname": Extra((str,), "ssl_assert_hostname"),
    "ssl_assert_fingerprint": Extra((str,), "ssl_assert_fingerprint"),
    "ssl_show_warn": Extra((bool, str), "ssl_show_warn", to_bool),
    "opaque_id": Extra((str,), "opaque_id"),
    "headers": Extra((dict,), "headers", to_headers),
    "connections_per_node": Extra((int, str), "connections_per_node", to_positive_int),
    "sniff_on_start": Extra((bool, str), "sniff_on_start", to_bool),
    "sniff_before_requests": Extra((bool, str), "sniff_before_requests", to_bool),
    "sniff_on_node_failure": Extra((bool, str), "sniff_on_node_failure", to_bool),
    "sniff_timeout": Extra((int, float, str), "sniff_timeout", to_positive_float),
    "min_delay_between_sniffing": Extra((int, float, str), "min_delay_between_sniffing", to_positive_float),
    # accepted, not passed on: see NOT_PASSED_ON
    "max_retries": Extra((int, str), None),
    "retry_on_status": Extra((int, str, list), None),
    "retry_on_timeout": Extra((bool, str), None),
    "fetch_size": Extra((int, str), None),
    "field_multi_value_leniency": Extra((bool, str), None),
    "kibana_url": Extra((str,), None),
}

#: why an accepted extra does not reach the client
NOT_PASSED_ON: dict[str, str] = {
    "max_retries": "the hook retries with backoff itself; the transport's retries stay off",
    "retry_on_status": "the hook retries with backoff itself; the transport's retries stay off",
    "retry_on_timeout": "the hook retries with backoff itself; the transport's retries stay off",
    "fetch_size": "an Elasticsearch SQL cursor option of the Elasticsearch provider's SQL hook",
    "field_multi_value_leniency": "an Elasticsearch SQL cursor option of the Elasticsearch provider's SQL hook",
    "kibana_url": "for the operators' extra link to Kibana",
}

#: kept for callers of the earlier flat table: extra field -> the types it may have
ALLOWED_EXTRAS: dict[str, tuple[type, ...]] = {name: extra.types for name, extra in EXTRAS.items()}


def client_kwargs(conn: ConnectionLike, extras: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``Elasticsearch(...)`` / ``AsyncElasticsearch(...)``.

    Transport-level retries are switched off (``max_retries=0``): the hook retries with exponential
    backoff itself, which the transport does not do for 429 and 5xx answers. The result always holds
    ``request_timeout`` and ``verify_certs``.

    :param conn: the Airflow connection (host, port, schema, login, password).
    :param extras: its extras (``extra_dejson``).
    :raises InvalidParameterError: for an unknown extra, a value of the wrong type or form, or no host.
    """
    unknown = sorted(set(extras) - set(EXTRAS))
    if unknown:
        raise InvalidParameterError(
            f"connection {conn.conn_id!r} has unknown extra field(s) {', '.join(map(repr, unknown))}; "
            f"allowed extras are {', '.join(EXTRAS)}"
        )
    if "timeout" in extras and "request_timeout" in extras:
        raise InvalidParameterError(
            f"connection {conn.conn_id!r} has both 'timeout' and 'request_timeout' extras; keep one"
        )
    if "http_auth" in extras and "basic_auth" in extras:
        raise InvalidParameterError(f"connection {conn.conn_id!r} has both 'http_auth' and 'basic_auth' extras")
    options: dict[str, Any] = {}
    for name, value in extras.items():
        extra = EXTRAS[name]
        if value is None:
            continue  # a JSON null: not set
        if not isinstance(value, extra.types):
            raise InvalidParameterError(
                f"connection {conn.conn_id!r}: extra {name!r} must be of type "
                f"{' or '.join(t.__name__ for t in extra.types)}, got {type(value).__name__}"
            )
        if extra.client_arg is None or (isinstance(value, str) and not value.strip()):
            continue  # not a client argument, or an empty form field
        converted = extra.convert(conn.conn_id, name, value) if extra.convert else value
        if converted is not None:
            options[extra.client_arg] = converted

    kwargs: dict[str, Any] = {
        **options,
        "request_timeout": options.get("request_timeout", DEFAULT_REQUEST_TIMEOUT),
        "verify_certs": options.get("verify_certs", True),
        "max_retries": 0,
        "retry_on_status": (),
    }
    if not kwargs["verify_certs"]:
        kwargs.setdefault("ssl_show_warn", False)  # the hook logs its own warning once
    if not kwargs.get("cloud_id"):
        kwargs.pop("cloud_id", None)
        kwargs["hosts"] = _hosts(conn)
    if not ({"api_key", "basic_auth", "bearer_auth"} & set(kwargs)):
        if conn.login:
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
