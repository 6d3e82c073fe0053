"""Retry with backoff for Elasticsearch calls, and the translation of what still fails.

429, 502, 503 and 504 answers, connection resets and client timeouts are retried with exponential backoff
and jitter (tenacity); everything else fails at once. What is left is raised as one of the provider's
exceptions with a message that names the call and Elasticsearch's reason, and never a credential.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import elasticsearch
import tenacity

from airflow_esml.exceptions import DeploymentNotFoundError, ElasticsearchRequestError, TransientRequestError

TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})

log = logging.getLogger(__name__)


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying: 429/502/503/504, connection resets and client timeouts."""
    if isinstance(exc, elasticsearch.ApiError):
        return exc.meta.status in TRANSIENT_STATUSES
    if isinstance(exc, elasticsearch.SSLError):
        return False
    return isinstance(exc, (elasticsearch.ConnectionError, elasticsearch.ConnectionTimeout))


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a call is retried.

    :param attempts: attempts in all, the first included.
    :param initial_wait: the scale of the backoff: the n-th wait is random in [0, initial_wait * 2**n]
        ("full jitter"), capped at ``max_wait``.
    :param max_wait: the longest single backoff in seconds.
    """

    attempts: int = 5
    initial_wait: float = 0.5
    max_wait: float = 10.0

    def _kwargs(self, what: str) -> dict[str, Any]:
        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "%s: transient error (%s), retry %d of %d in %.1fs",
                what,
                describe_error(exc) if exc else "unknown",
                state.attempt_number,
                self.attempts - 1,
                state.upcoming_sleep,
            )

        return {
            "stop": tenacity.stop_after_attempt(self.attempts),
            "wait": tenacity.wait_random_exponential(multiplier=self.initial_wait, max=self.max_wait),
            "retry": tenacity.retry_if_exception(is_transient),
            "before_sleep": before_sleep,
            "reraise": True,
        }

    def call(self, what: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        try:
            return tenacity.Retrying(**self._kwargs(what))(fn, *args, **kwargs)
        except (elasticsearch.ApiError, elasticsearch.TransportError) as exc:
            raise translate(what, exc) from exc

    async def acall(self, what: str, fn: Callable[..., Awaitable[Any]], /, *args: Any, **kwargs: Any) -> Any:
        async def attempt() -> Any:  # the client's methods return coroutines without being coroutine functions
            return await fn(*args, **kwargs)

        try:
            return await tenacity.AsyncRetrying(**self._kwargs(what))(attempt)
        except (elasticsearch.ApiError, elasticsearch.TransportError) as exc:
            raise translate(what, exc) from exc


def describe_error(exc: BaseException) -> str:
    """A short, credential-free description: ``503 unavailable_shards_exception: reason``."""
    if isinstance(exc, elasticsearch.ApiError):
        return f"{exc.meta.status} {exc.message}: {_reason(exc)}"
    return f"{type(exc).__name__}: {exc}"


def translate(what: str, exc: elasticsearch.ApiError | elasticsearch.TransportError) -> Exception:
    """The provider exception for an error that was not, or no longer, retried."""
    detail = describe_error(exc)
    if isinstance(exc, elasticsearch.ApiError):
        status = exc.meta.status
        if status == 404:
            return DeploymentNotFoundError(f"{what}: {detail}")
        if status == 401:
            return ElasticsearchRequestError(
                f"{what}: authentication failed, check the connection's credentials ({detail})"
            )
        if exc.message == "media_type_header_exception":
            return ElasticsearchRequestError(
                f"{what}: the server refused the client's compatibility headers ({detail}); when the server's "
                "major version differs from the elasticsearch client's, set [elasticsearch] es_compat_with "
                "(AIRFLOW__ELASTICSEARCH__ES_COMPAT_WITH) to the server's major version"
            )
        if status in TRANSIENT_STATUSES:
            return TransientRequestError(f"{what}: still failing after retries ({detail})")
        return ElasticsearchRequestError(f"{what}: {detail}")
    if isinstance(exc, elasticsearch.SSLError):
        return ElasticsearchRequestError(
            f"{what}: TLS verification failed ({_root_cause(exc)}); set the connection's 'ca_certs' extra "
            "to the CA that signed the server's certificate"
        )
    if is_transient(exc):
        return TransientRequestError(f"{what}: cannot reach Elasticsearch after retries ({detail})")
    return ElasticsearchRequestError(f"{what}: {detail}")


def _root_cause(exc: BaseException) -> str:
    """The innermost cause's text, e.g. OpenSSL's "certificate verify failed: ..." under "TLS error"."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return str(exc)


def _reason(exc: elasticsearch.ApiError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    if isinstance(error, dict):
        causes = error.get("root_cause") or [error]
        return str(causes[0].get("reason", error.get("reason", "")))
    return str(error or exc.body)
