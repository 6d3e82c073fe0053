"""``POST``/``PUT _security/api_key``: create an API key with role descriptors, limited by its creator.

As Elasticsearch's ``TransportCreateApiKeyAction`` (elastic/elasticsearch, x-pack/plugin/security/): the key's
privileges are its role descriptors intersected with its creator's; without descriptors it has its creator's
privileges; a key created by an API key ("derived") must have empty descriptors. Needs
``manage_own_api_key``, ``manage_api_key``, ``manage_security`` or ``all`` (checked before the handler).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from airflow_esml.testing.cluster.values import parse_time
from airflow_esml.testing.protocol import EsError, EsVersion, Route, SimRequest, SimResponse
from airflow_esml.testing.server.auth import ApiKey, Authenticator
from airflow_esml.testing.server.privileges import Role

DERIVED_KEY_REFUSED = "creating derived api keys requires an explicit role descriptor that is empty (has no privileges)"
SECURITY_DISABLED = (
    "Security must be explicitly enabled when using a [basic] license. Enable security by setting "
    "[xpack.security.enabled] to [true] in the elasticsearch.yml file and restart the node."
)


class SecurityApi:
    """The API-key endpoint of one simulator.

    :param auth: the simulator's authenticator (None: an open cluster, where security is off).
    :param version: the simulated version (which privileges exist).
    """

    endpoint_names: dict[tuple[str, str], str] = {
        ("POST", "/_security/api_key"): "api_key",
        ("PUT", "/_security/api_key"): "api_key",
    }

    def __init__(self, auth: Authenticator | None, version: EsVersion) -> None:
        self.auth, self.version = auth, version

    def routes(self) -> list[Route]:
        return [(method, template, self.create) for method, template in self.endpoint_names]

    def create(self, request: SimRequest) -> SimResponse:
        if self.auth is None:
            raise EsError(500, "security_exception", SECURITY_DISABLED)
        creator = self.auth.check(request.headers, request.path)
        body: dict[str, Any] = request.body if isinstance(request.body, dict) else {}
        name = body.get("name")
        if not name:
            raise EsError(400, "action_request_validation_exception", "Validation Failed: 1: api key name is required;")
        descriptors = body.get("role_descriptors") or {}
        try:
            roles = [Role.parse(d or {}, self.version) for d in descriptors.values()]
        except ValueError as exc:
            raise EsError(400, "action_request_validation_exception", f"Validation Failed: 1: {exc};") from None
        if creator.is_api_key and (not descriptors or not all(r.empty for r in roles)):
            raise EsError(400, "illegal_argument_exception", DERIVED_KEY_REFUSED)
        role = Role.merge(roles).within(creator.role) if descriptors else creator.role
        key = ApiKey(secrets.token_urlsafe(15)[:20], str(name), secrets.token_urlsafe(16)[:22], role, creator.user)
        self.auth.add_key(key)
        answer: dict[str, Any] = {"id": key.id, "name": key.name}
        if body.get("expiration"):
            answer["expiration"] = int((time.time() + parse_time(str(body["expiration"]), "expiration")) * 1000)
        answer.update({"api_key": key.secret, "encoded": key.encoded})
        return SimResponse(200, answer)
