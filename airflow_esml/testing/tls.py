"""The simulator's security layer: a self-signed CA and server certificate, and credential checks."""

from __future__ import annotations

import base64
import binascii
import datetime
import hmac
import ipaddress
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from airflow_esml.testing.protocol import EsError

_WWW_AUTHENTICATE = ['Basic realm="security", charset="UTF-8"', 'Bearer realm="security"', "ApiKey"]


@dataclass(frozen=True)
class TlsFiles:
    """Paths of the PEM files written by :func:`write_tls_files`."""

    ca_cert: str
    server_cert: str
    server_key: str

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_cert, self.server_key)
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def _load_or_create_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = directory / "ca.crt", directory / "ca.key"
    if cert_path.exists() and key_path.exists():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return x509.load_pem_x509_certificate(cert_path.read_bytes()), key
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("airflow-esml simulator CA"))
        .issuer_name(_name("airflow-esml simulator CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def write_tls_files(directory: str | os.PathLike[str]) -> TlsFiles:
    """Write ``ca.crt`` (reused when ``ca.crt``/``ca.key`` exist) and a fresh ``server.crt``/``server.key``
    for ``localhost`` and ``127.0.0.1`` signed by it.

    :param directory: created if missing.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _load_or_create_ca(path)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(path / "server.key", key)
    (path / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return TlsFiles(str(path / "ca.crt"), str(path / "server.crt"), str(path / "server.key"))


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
