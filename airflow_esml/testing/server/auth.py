"""Authentication of the simulator's server: API keys (each with its role) and basic auth, with Elasticsearch's
401 answers; and the authorization of each request's transport actions, with its 403 answers.

An API key is found by what the client sends: the raw string, its base64 encoding, or for an ``id:key`` value
the client's ``api_key=(id, key)`` tuple. Secrets are compared in constant time and never appear in errors,
logs or the audit log.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from airflow_esml.testing.protocol import EsError, EsVersion
from airflow_esml.testing.server.privileges import Check, Role, denial

_WWW_AUTHENTICATE = ['Basic realm="security", charset="UTF-8"', 'Bearer realm="security"', "ApiKey"]

#: the user who owns the API keys given to the simulator (``api_key=``, ``api_keys=``)
KEY_OWNER = "elastic"


def _unauthorized(reason: str) -> EsError:
    return EsError(401, "security_exception", reason, extra={"header": {"WWW-Authenticate": _WWW_AUTHENTICATE}})


@dataclass(frozen=True)
class Principal:
    """Who sent a request: a user (basic auth, a superuser here) or one of the user's API keys.

    :param user: the user name (an API key's owner).
    :param key_id: the API key's id, None for a user.
    :param role: what it may do.
    """

    user: str
    key_id: str | None
    role: Role

    @property
    def is_api_key(self) -> bool:
        return self.key_id is not None

    def authorize(self, check: Check, version: EsVersion) -> None:
        """Raise Elasticsearch's 403 unless the principal may make ``check``."""
        if not self.role.allows(check):
            if self.key_id is None:  # users are superusers here; kept for completeness
                raise EsError(
                    403, "security_exception", f"action [{check.action}] is unauthorized for user [{self.user}]"
                )
            raise denial(check, self.key_id, self.user, version)


@dataclass(frozen=True)
class ApiKey:
    """One API key: its id, name, secret (the ``api_key`` value) and role."""

    id: str
    name: str
    secret: str
    role: Role
    owner: str = KEY_OWNER

    @property
    def encoded(self) -> str:
        """``base64(id:api_key)``, the value of ``Authorization: ApiKey ...`` (Elasticsearch's ``encoded``)."""
        return base64.b64encode(f"{self.id}:{self.secret}".encode()).decode()


def key_id_of(value: str) -> str:
    """The id of a key given as a string: the part before ``:`` of ``id:key``, else one derived from it."""
    head, sep, _ = value.partition(":")
    if sep and head:
        return head
    return base64.urlsafe_b64encode(hashlib.sha256(value.encode()).digest()).decode()[:20]


class Authenticator:
    """Checks ``Authorization`` headers against API keys and/or basic-auth credentials.

    :param api_key: an API key with every privilege; accepted raw, base64-encoded, or (for ``id:key``) as the
        client's ``api_key=(id, key)`` tuple encodes it.
    :param basic_auth: ``(user, password)``, a superuser.
    :param api_keys: more API keys, each with its :class:`Role`.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        api_keys: Mapping[str, Role] | None = None,
    ) -> None:
        if api_key is None and basic_auth is None and not api_keys:
            raise ValueError("Authenticator needs an api_key, api_keys or basic_auth")
        self._lock = threading.Lock()
        self._keys: list[tuple[list[bytes], ApiKey]] = []
        if api_key is not None:
            self.add_key(ApiKey(key_id_of(api_key), "esml-simulator", api_key, Role.superuser()), raw=api_key)
        for value, role in (api_keys or {}).items():
            self.add_key(ApiKey(key_id_of(value), "esml-simulator", value, role), raw=value)
        self._basic = basic_auth

    def add_key(self, key: ApiKey, *, raw: str | None = None) -> None:
        """Accept ``key`` (sent encoded as ``id:secret``, or as ``raw`` and its base64 when given)."""
        forms = [key.encoded.encode(), f"{key.id}:{key.secret}".encode()]
        if raw is not None:
            forms += [raw.encode(), base64.b64encode(raw.encode())]
        with self._lock:
            self._keys.append((forms, key))

    def check(self, headers: Mapping[str, str], uri: str) -> Principal:
        """Who sent the request; a 401 ``security_exception`` unless it carries valid credentials.

        :param headers: lower-cased request headers.
        :param uri: the request URI (path and query) as ES names it in messages.
        """
        value = headers.get("authorization", "").strip()
        scheme, _, token = value.partition(" ")
        scheme, token = scheme.lower(), token.strip()
        if scheme == "apikey" and token:
            with self._lock:
                keys = list(self._keys)
            for forms, key in keys:
                if any(hmac.compare_digest(token.encode(), form) for form in forms):
                    return Principal(key.owner, key.id, key.role)
            raise _unauthorized(
                "unable to authenticate with provided credentials and anonymous access is not allowed for this request"
            )
        if scheme == "basic" and token:
            user, password = _decode_basic(token)
            if self._basic is not None and user is not None:
                ok_user = hmac.compare_digest(user.encode(), self._basic[0].encode())
                ok_password = hmac.compare_digest((password or "").encode(), self._basic[1].encode())
                if ok_user and ok_password:
                    return Principal(user, None, Role.superuser())
            raise _unauthorized(f"unable to authenticate user [{user or ''}] for REST request [{uri}]")
        raise _unauthorized(f"missing authentication credentials for REST request [{uri}]")


def _decode_basic(token: str) -> tuple[str | None, str | None]:
    try:
        user, _, password = base64.b64decode(token, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    return user, password
