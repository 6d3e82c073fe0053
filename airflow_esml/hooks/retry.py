"""Retry with backoff for Elasticsearch calls, and the translation of what still fails.

429, 502, 503 and 504 answers, connection resets and client timeouts are retried with exponential backoff
and jitter (tenacity); everything else fails at once. A call may have a deadline (absolute wall-clock time):
then no retry starts whose backoff would pass it, and :func:`attempt_timeout` caps each attempt's request
timeout to the time left, so a cluster that accepts connections but never answers cannot hold a wait past
its end. What is left is raised as one of the provider's exceptions with a message that names the call and
Elasticsearch's reason (cut to a readable length), and never a credential.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import elasticsearch
import tenacity

from airflow_esml.core.params import cut
from airflow_esml.exceptions import (
    ApiNotAvailableError,
    DeploymentNotFoundError,
    ElasticsearchRequestError,
    EsmlError,
    PrivilegeError,
    TransientRequestError,
)

TRANSIENT_STATUSES = frozenset({429, 502, 503, 504})
#: the shortest request timeout an attempt gets, even when its call's deadline has passed (a last look)
MIN_ATTEMPT_TIMEOUT = 0.5
#: how many characters of Elasticsearch's reason an error message quotes
REASON_LENGTH = 300

log = logging.getLogger(__name__)

#: the logger elastic-transport writes one INFO line per HTTP request to (and its retry warnings)
TRANSPORT_LOGGER = "elastic_transport.transport"


def quiet_transport() -> None:
    """Keep the transport's one-INFO-line-per-request out of task logs; its warnings and errors still show.

    Raises the ``elastic_transport.transport`` logger to WARNING, once, and only when nothing has set its
    level yet: a deployment that wants every request logged sets that logger to INFO (or DEBUG) in its
    logging config and keeps it. A batch of 2,000 documents otherwise writes about 125 request lines.
    """
    logger = logging.getLogger(TRANSPORT_LOGGER)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)


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

    def _kwargs(self, what: str, deadline: float | None) -> dict[str, Any]:
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

        backoff = _Backoff(tenacity.wait_random_exponential(multiplier=self.initial_wait, max=self.max_wait))
        stop: Any = tenacity.stop_after_attempt(self.attempts)
        if deadline is not None:
            stop = stop | (lambda state: time.time() + backoff(state) >= deadline)
        return {
            "stop": stop,
            "wait": backoff,
            "retry": tenacity.retry_if_exception(is_transient),
            "before_sleep": before_sleep,
            "reraise": True,
        }

    def call(
        self, what: str, fn: Callable[..., Any], /, *args: Any, deadline: float | None = None, **kwargs: Any
    ) -> Any:
        """``fn(*args, **kwargs)``, retried; what still fails is raised as a provider exception.

        :param what: the call, as error messages and log lines name it.
        :param deadline: the absolute wall-clock time (epoch seconds) by which the call should end: no retry
            whose backoff would pass it. ``fn`` caps its own request timeout (see :func:`attempt_timeout`).
        """
        timer = _AttemptTimer()
        try:
            return tenacity.Retrying(**self._kwargs(what, deadline))(timer.timed(fn), *args, **kwargs)
        except (elasticsearch.ApiError, elasticsearch.TransportError) as exc:
            raise translate(what, exc, waited=timer.last()) from exc

    async def acall(
        self,
        what: str,
        fn: Callable[..., Awaitable[Any]],
        /,
        *args: Any,
        deadline: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Asynchronous :meth:`call`."""
        timer = _AttemptTimer()

        async def attempt() -> Any:  # the client's methods return coroutines without being coroutine functions
            timer.start()
            return await fn(*args, **kwargs)

        try:
            return await tenacity.AsyncRetrying(**self._kwargs(what, deadline))(attempt)
        except (elasticsearch.ApiError, elasticsearch.TransportError) as exc:
            raise translate(what, exc, waited=timer.last()) from exc


def attempt_timeout(deadline: float, request_timeout: float, now: float | None = None) -> float:
    """The request timeout of one attempt of a call that must end by ``deadline``: the time left, at most the
    connection's ``request_timeout`` and at least :data:`MIN_ATTEMPT_TIMEOUT` (one short last look)."""
    left = deadline - (time.time() if now is None else now)
    return min(request_timeout, max(MIN_ATTEMPT_TIMEOUT, left))


class _Backoff:
    """A tenacity wait that draws each backoff once, so the deadline's stop and the sleep agree on it."""

    def __init__(self, wait: Callable[[tenacity.RetryCallState], float]) -> None:
        self._wait = wait
        self._drawn: tuple[int, float] | None = None

    def __call__(self, state: tenacity.RetryCallState) -> float:
        if self._drawn is None or self._drawn[0] != state.attempt_number:
            self._drawn = (state.attempt_number, self._wait(state))
        return self._drawn[1]


class _AttemptTimer:
    """When the last attempt started, for "did not answer within ..." messages."""

    def __init__(self) -> None:
        self._started = time.monotonic()

    def start(self) -> None:
        self._started = time.monotonic()

    def last(self) -> float:
        """Seconds since the last attempt started."""
        return time.monotonic() - self._started

    def timed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def attempt(*args: Any, **kwargs: Any) -> Any:
            self.start()
            return fn(*args, **kwargs)

        return attempt


def describe_error(exc: BaseException) -> str:
    """A short, credential-free description: ``503 unavailable_shards_exception: reason``."""
    if isinstance(exc, elasticsearch.ApiError):
        return cut(f"{exc.meta.status} {exc.message}: {_reason(exc)}", REASON_LENGTH)
    return cut(f"{type(exc).__name__}: {exc}", REASON_LENGTH)


def translate(
    what: str, exc: elasticsearch.ApiError | elasticsearch.TransportError, *, waited: float | None = None
) -> Exception:
    """The provider exception for an error that was not, or no longer, retried.

    Its ``status`` is the HTTP status of Elasticsearch's answer, when there was one.

    :param waited: seconds the last attempt waited, for a timeout's message.
    """
    error = _translate(what, exc, waited)
    if isinstance(exc, elasticsearch.ApiError) and isinstance(error, EsmlError):
        error.status = exc.meta.status
    return error


def _translate(
    what: str, exc: elasticsearch.ApiError | elasticsearch.TransportError, waited: float | None
) -> Exception:
    detail = describe_error(exc)
    if isinstance(exc, elasticsearch.ApiError):
        status = exc.meta.status
        if status == 403:
            return privilege_error(what, _reason(exc), detail)
        if status == 410:
            return ApiNotAvailableError(f"{what}: this API is not available on this cluster ({detail})")
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
            f"{what}: TLS verification failed ({cut(_root_cause(exc), REASON_LENGTH)}); set the connection's "
            "'ca_certs' extra to the CA that signed the server's certificate"
        )
    if isinstance(exc, elasticsearch.ConnectionTimeout):
        within = "" if waited is None else f" within {waited:.1f}s"
        return TransientRequestError(f"{what}: the cluster did not answer{within} ({detail})")
    if is_transient(exc):
        return TransientRequestError(f"{what}: cannot reach Elasticsearch after retries ({detail})")
    return ElasticsearchRequestError(f"{what}: {detail}")


#: Elasticsearch's denial (AuthorizationDenialMessages in elastic/elasticsearch, x-pack/plugin/security/):
#: "action [A] is unauthorized for API key id [..] of user [..] [on indices [I]], this action is granted by
#: the cluster|index privileges [P,Q]" (before 7.12 "granted by the privileges [..]")
_DENIAL = re.compile(r"action \[(?P<action>[^\]]+)\]")
_GRANTED = re.compile(r"granted by the (?:(?P<kind>cluster|index) )?privileges \[(?P<privileges>[^\]]*)\]")
_INDICES = re.compile(r"on (?:restricted )?indices \[(?P<indices>[^\]]*)\]")


def privilege_error(what: str, reason: str, detail: str) -> PrivilegeError:
    """The error for a 403: which action was refused and which privileges Elasticsearch says grant it.

    :param what: the call, as messages name it.
    :param reason: Elasticsearch's ``security_exception`` reason.
    :param detail: the short description of the answer (status, type, reason), quoted at the end.
    """
    action = _DENIAL.search(reason)
    granted = _GRANTED.search(reason)
    indices = _INDICES.search(reason)
    privileges = tuple(p.strip() for p in granted.group("privileges").split(",") if p.strip()) if granted else ()
    kind = (granted.group("kind") or ("index" if indices else "cluster")) if granted else None
    names = tuple(i.strip() for i in indices.group("indices").split(",") if i.strip()) if indices else ()
    if action and privileges:
        on = f" on indices [{', '.join(names)}]" if names else ""
        needs = f"the {kind} privilege [{privileges[0]}]" + (
            f" (or one of [{', '.join(privileges[1:])}])" if len(privileges) > 1 else ""
        )
        message = (
            f"{what}: permission denied: action [{action.group('action')}]{on} needs {needs}, which the "
            f"connection's API key or user does not have; grant it (see the provider's docs/privileges.md) ({detail})"
        )
    else:
        message = f"{what}: permission denied: the connection's API key or user lacks a privilege ({detail})"
    return PrivilegeError(
        message,
        action=action.group("action") if action else None,
        privileges=privileges,
        kind=kind,
        indices=names,
    )


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
