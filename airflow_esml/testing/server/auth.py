"""Authentication of the simulator's server: API-key and basic-auth checks with Elasticsearch's 401 answers."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

from airflow_esml.testing.protocol import EsError

_WWW_AUTHENTICATE = ['Basic realm="security", charset="UTF-8"', 'Bearer realm="security"', "ApiKey"]


def _unauthorized(reason: str) -> EsError:
    return EsError(401, "security_exception", reason, extra={"header": {"WWW-Authenticate": _WWW_AUTHENTICATE}})


class Authenticator:
    """Checks ``Authorization`` headers against an API key and/or basic-auth credentials.

    Secrets are compared in constant time and never appear in errors or logs.

    :param api_key: accepted as sent raw, base64-encoded, or (for ``id:key``) as the client's
        ``api_key=(id, key)`` tuple encodes it.
    :param basic_auth: ``(user, password)``.
    """

    def __init__(self, *, api_key: str | None = None, basic_auth: tuple[str, str] | None = None) -> None:
        if api_key is None and basic_auth is None:
            raise ValueError("Authenticator needs an api_key or basic_auth")
        self._api_keys: list[bytes] = []
        if api_key is not None:
            self._api_keys = [api_key.encode(), base64.b64encode(api_key.encode())]
        self._basic = basic_auth

    def check(self, headers: Mapping[str, str], uri: str) -> None:
        """Raise a 401 ``security_exception`` unless the request carries valid credentials.

        :param headers: lower-cased request headers.
        :param uri: the request URI (path and query) as ES names it in messages.
        """
        value = headers.get("authorization", "").strip()
        scheme, _, token = value.partition(" ")
        scheme, token = scheme.lower(), token.strip()
        if scheme == "apikey" and token:
            if self._api_keys and any(hmac.compare_digest(token.encode(), k) for k in self._api_keys):
                return
            raise _unauthorized(
                "unable to authenticate with provided credentials and anonymous access is not allowed for this request"
            )
        if scheme == "basic" and token:
            user, password = _decode_basic(token)
            if self._basic is not None and user is not None:
                ok_user = hmac.compare_digest(user.encode(), self._basic[0].encode())
                ok_password = hmac.compare_digest((password or "").encode(), self._basic[1].encode())
                if ok_user and ok_password:
                    return
            raise _unauthorized(f"unable to authenticate user [{user or ''}] for REST request [{uri}]")
        raise _unauthorized(f"missing authentication credentials for REST request [{uri}]")


def _decode_basic(token: str) -> tuple[str | None, str | None]:
    try:
        user, _, password = base64.b64decode(token, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    return user, password
