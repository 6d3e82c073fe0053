"""Every check of a task parameter, and every ``DEFAULT_*`` value, in one place.

Values may arrive from Jinja templates as strings (``"4"``, ``"None"``, ``"{'enabled': True}"``), so they
are parsed strictly here; every refusal is an :class:`~airflow_esml.exceptions.InvalidParameterError` that
names the parameter and the value, raised before anything in the cluster changes. Cheap to import: the
operators call these checks while a DAG file is parsed.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Mapping
from datetime import time, timedelta
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airflow_esml.exceptions import InvalidParameterError

if TYPE_CHECKING:
    from airflow_esml.core.settings import Settings
    from airflow_esml.core.status import AdaptiveAllocations
    from airflow_esml.core.window import WindowSpec

#: the Airflow connection used when a task names none
DEFAULT_CONN_ID = "elasticsearch_default"
#: the index that holds the lease documents unless a task names another
DEFAULT_LEASES_INDEX = "esml-leases"
#: how long a lease outlives a run that died without releasing it
DEFAULT_LEASE_TTL = timedelta(hours=4)
#: the longest time in seconds between two renewals of a live lease by its keeper (so also the longest time a
#: released lease's keeper takes to notice and end)
MAX_RENEW_INTERVAL = 60.0
#: the shortest default time in seconds between two renewals (a shorter one may be given explicitly)
MIN_RENEW_INTERVAL = 1.0
#: the keeper of a lease gives up after this long (a batch longer than a year is not expected)
KEEPER_TIMEOUT = timedelta(days=365)
#: seconds a lease document's lock lasts if its holder dies
DEFAULT_LOCK_TTL = 120.0
#: seconds between two looks at a deployment while a task or sensor waits
DEFAULT_POLL_INTERVAL = 5.0
#: seconds a task waits for allocations before it fails
DEFAULT_TIMEOUT = 1800.0
#: seconds the one inference call that deploys a default inference endpoint may take, for a task without a
#: ``timeout`` of its own (Elasticsearch waits that long for the deployment to start)
DEFAULT_DEPLOY_TIMEOUT = 600.0
#: seconds between two shared stats requests of a triggerer's poller (one request serves every waiter)
DEFAULT_TRIGGER_INTERVAL = 1.0
#: the port of a connection that names none
DEFAULT_PORT = 9200
#: seconds the client waits for one answer, unless the connection's ``request_timeout`` extra says otherwise
DEFAULT_REQUEST_TIMEOUT = 30.0
#: seconds an in-cluster batch (``IndexInferenceOperator``) may run before it is cancelled and the task fails
DEFAULT_INDEX_TASK_TIMEOUT = 6 * 3600.0
#: seconds between two looks at an Elasticsearch task (``GET _tasks/<id>``) while waiting for it
DEFAULT_TASK_POLL_INTERVAL = 5.0
#: seconds between two progress lines of a running batch, at least
DEFAULT_PROGRESS_INTERVAL = 10.0
#: the index that keeps the Elasticsearch task id of each IndexInferenceOperator task instance (so a retry
#: resumes the same task)
DEFAULT_TASKS_INDEX = "esml-tasks"

AdaptivePolicy = Literal["raise_min", "fail", "disable"]
ADAPTIVE_POLICIES: tuple[str, ...] = ("raise_min", "fail", "disable")
#: what a fixed count does to a deployment with adaptive allocations on, unless a task says otherwise: raise
#: their minimum (and their maximum when it is lower) for the window, keeping them on (the only policy that
#: works on Serverless, where adaptive allocations cannot be switched off)
DEFAULT_ADAPTIVE_POLICY: AdaptivePolicy = "raise_min"
CapacityPolicy = Literal["fail", "fit", "off"]
CAPACITY_POLICIES: tuple[str, ...] = ("fail", "fit", "off")
DriftPolicy = Literal["respect", "restore"]
DRIFT_POLICIES: tuple[str, ...] = ("respect", "restore")
DOCUMENT_FAILURE_POLICIES: tuple[str, ...] = ("fail", "warn")
CONFLICT_POLICIES: tuple[str, ...] = ("abort", "proceed")

_ADAPTIVE_KEYS = frozenset({"enabled", "min_number_of_allocations", "max_number_of_allocations"})


#: how many characters of a value an error message quotes
SHOWN_LENGTH = 100


def cut(text: str, limit: int = SHOWN_LENGTH) -> str:
    """``text``, or its first ``limit`` characters and how long it was, so a message stays readable."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def shown(value: Any, limit: int = SHOWN_LENGTH) -> str:
    """``value`` as an error message quotes it: its repr, cut to about ``limit`` characters."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} characters)"
    return cut(repr(value), limit)


def is_unset(value: Any) -> bool:
    """True for a parameter left out: None, or what a template renders from it (``""``, ``"None"``)."""
    return value is None or (isinstance(value, str) and value.strip() in ("", "None"))


def check_id(name: str, value: Any) -> str:
    """``value`` if it is a non-empty string (a deployment or model id); checked after templating, before
    any request, so an empty id is not sent to Elasticsearch."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidParameterError(f"{name} must be a non-empty string, got {shown(value)}")
    return value


#: Airflow's config option that tells apart installations sharing one cluster's leases (``[esml] installation_id``)
INSTALLATION_OPTION = ("esml", "installation_id")
_INSTALLATION_ID = r"[A-Za-z0-9._-]{1,64}"  # compiled at first use (re caches it), not on import


def parse_installation_id(value: Any) -> str:
    """``[esml] installation_id``: "" when unset, else up to 64 letters, digits, ``.``, ``_`` or ``-`` (it goes
    into lease ids, whose ``/`` separate the DAG, the run and the lease name)."""
    if is_unset(value) or (isinstance(value, str) and not value.strip()):
        return ""
    if not isinstance(value, str) or not re.fullmatch(_INSTALLATION_ID, value.strip()):
        raise InvalidParameterError(
            f"[esml] installation_id must be 1 to 64 letters, digits, '.', '_' or '-', got {shown(value)}"
        )
    return value.strip()


def _ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` as an int of at least ``minimum``.

    A Python int, or a string of ASCII digits (what a template renders) with optional spaces around it;
    anything else (signs, ``"2.0"``, ``"²"``, bools, floats) is refused with the parameter's name.
    """
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _ascii_digits(value.strip()):
        try:
            number = int(value.strip())
        except ValueError:  # more digits than int() converts
            number = None
    if number is None or number < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
        raise InvalidParameterError(f"{name} must be {kind}, got {shown(value)}")
    return number


def optional_positive_int(name: str, value: Any) -> int | None:
    """None when ``value`` is unset, else :func:`positive_int`."""
    return None if is_unset(value) else positive_int(name, value)


def non_negative_int(name: str, value: Any) -> int:
    """An int of at least 0, for parameters that cannot be templated (``release_retries``)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidParameterError(f"{name} must be a non-negative integer, got {shown(value)}")
    return value


def _finite(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def positive_number(name: str, value: Any, *, zero_ok: bool = False) -> float:
    """``value`` as a float: a finite int or float above 0 (or at least 0 with ``zero_ok``).

    For parameters that cannot be templated, so a string is refused when the DAG is defined.
    """
    if not _finite(value) or value < 0 or (value == 0 and not zero_ok):
        kind = "a non-negative number" if zero_ok else "a positive number"
        raise InvalidParameterError(f"{name} must be {kind}, got {shown(value)}")
    return float(value)


def seconds(name: str, value: float | timedelta, *, zero_ok: bool = False) -> float:
    """``value`` in seconds (a number or a timedelta), which must be positive (or 0 with ``zero_ok``)."""
    number = value.total_seconds() if isinstance(value, timedelta) else value
    if not _finite(number) or number < 0 or (number == 0 and not zero_ok):
        kind = "a non-negative" if zero_ok else "a positive"
        raise InvalidParameterError(f"{name} must be {kind} number of seconds or a timedelta, got {shown(value)}")
    return float(number)


def parse_renew_interval(lease_ttl: float, value: float | timedelta | None) -> float:
    """Seconds between two renewals of a lease of ``lease_ttl`` seconds.

    Default: a third of ``lease_ttl``, within [:data:`MIN_RENEW_INTERVAL`, :data:`MAX_RENEW_INTERVAL`] and
    never more than half of it. A given value must be positive and at most half of ``lease_ttl``, so that one
    failed renewal does not lose the lease.
    """
    if value is None:
        return min(max(lease_ttl / 3, MIN_RENEW_INTERVAL), MAX_RENEW_INTERVAL, lease_ttl / 2)
    interval = seconds("renew_interval", value)
    if interval > lease_ttl / 2:
        raise InvalidParameterError(
            f"renew_interval must be at most half of lease_ttl ({lease_ttl:g}s), got {interval:g}s: one late renewal "
            "would lose the lease"
        )
    return interval


def parse_bound(name: str, value: Any) -> float | None:
    """A non-negative number (templates render strings); None when unset means no bound."""
    if is_unset(value):
        return None
    try:
        number = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        number = None
    if number is None or number < 0 or number != number:  # NaN
        raise InvalidParameterError(f"{name} must be a non-negative number, got {shown(value)}")
    return number


def choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``; otherwise an error naming the choices."""
    if value not in choices:
        raise InvalidParameterError(f"{name} must be one of {choices}, got {shown(value)}")
    return str(value)


def check_drift_policy(value: Any) -> DriftPolicy:
    """``on_drift``: ``respect`` or ``restore``."""
    return choice("on_drift", value, DRIFT_POLICIES)  # type: ignore[return-value]


def check_adaptive_policy(value: Any) -> AdaptivePolicy:
    """``adaptive_policy``: ``raise_min``, ``fail`` or ``disable``."""
    return choice("adaptive_policy", value, ADAPTIVE_POLICIES)  # type: ignore[return-value]


def check_serverless_policy(policy: AdaptivePolicy) -> AdaptivePolicy:
    """``policy`` if a Serverless project can apply it: adaptive allocations cannot be switched off there.

    :raises InvalidParameterError: ``policy`` is ``disable``.
    """
    if policy == "disable":
        raise InvalidParameterError(
            "adaptive_policy='disable' cannot be applied on Elastic Cloud Serverless: trained model autoscaling "
            "is always on there and cannot be turned off, so only adaptive settings are accepted. Use "
            "adaptive_policy='raise_min' (the default) to raise the adaptive minimum for the window instead"
        )
    return policy


def parse_capacity_policy(value: Any) -> CapacityPolicy:
    """``capacity_policy`` after templating: ``fail``, ``fit`` or ``off`` (None means ``off``)."""
    if is_unset(value):
        return "off"
    if value not in CAPACITY_POLICIES:
        raise InvalidParameterError(f"capacity_policy must be one of {CAPACITY_POLICIES} or None, got {shown(value)}")
    return value


def parse_max_step(value: Any) -> int | None:
    """``max_step`` after templating: None (one jump) or a positive integer."""
    return optional_positive_int("max_step", value)


def parse_optional_mapping(name: str, value: Any) -> dict[str, Any] | None:
    """An optional JSON object (a dict, or its rendered-template text), e.g. a ``query``."""
    if is_unset(value):
        return None
    if isinstance(value, str):
        value = _parse_mapping_text(name, value)
    if not isinstance(value, Mapping):
        raise InvalidParameterError(f"{name} must be a JSON object, got {shown(value)}")
    return dict(value)


def parse_index_batch(
    *, source_index: Any, dest_index: Any, pipeline: Any, slices: Any, batch_size: Any, conflicts: Any,
    on_document_failure: Any, requests_per_second: Any, max_docs: Any,
) -> dict[str, Any]:  # fmt: skip
    """The rendered parameters of an in-cluster batch (``IndexInferenceOperator``), checked.

    ``dest_index`` unset means ``_update_by_query`` on ``source_index`` in place, which needs a ``pipeline``
    unless the index infers through its mapping (``semantic_text``); ``dest_index`` equal to ``source_index``
    is refused (``_reindex`` cannot write into its source).
    """
    source = check_id("source_index", source_index)
    dest = None if is_unset(dest_index) else check_id("dest_index", dest_index)
    if dest is not None and dest == source:
        raise InvalidParameterError(
            f"dest_index must differ from source_index ({shown(source)}); leave it unset to update in place"
        )
    rate = None if is_unset(requests_per_second) else positive_number("requests_per_second", requests_per_second)
    return {
        "source_index": source,
        "dest_index": dest,
        "pipeline": None if is_unset(pipeline) else check_id("pipeline", pipeline),
        "slices": optional_positive_int("slices", slices),
        "batch_size": optional_positive_int("batch_size", batch_size),
        "conflicts": choice("conflicts", conflicts, CONFLICT_POLICIES),
        "on_document_failure": choice("on_document_failure", on_document_failure, DOCUMENT_FAILURE_POLICIES),
        "requests_per_second": rate,
        "max_docs": optional_positive_int("max_docs", max_docs),
    }


def parse_adaptive(value: Any, name: str = "adaptive_allocations") -> AdaptiveAllocations:
    """Adaptive-allocations settings from a dict (or its rendered-template string form)."""
    from airflow_esml.core.status import AdaptiveAllocations  # a dataclass: built when first parsed

    if isinstance(value, str):
        value = _parse_mapping_text(name, value)
    if isinstance(value, AdaptiveAllocations):
        return value
    if not isinstance(value, Mapping):
        raise InvalidParameterError(f"{name} must be a dict with 'enabled' and optional bounds, got {shown(value)}")
    unknown = sorted(set(value) - _ADAPTIVE_KEYS)
    if unknown:
        raise InvalidParameterError(
            f"{name} has unknown key(s) {cut(str(unknown))}; allowed are {sorted(_ADAPTIVE_KEYS)}"
        )
    enabled = value.get("enabled")
    if not isinstance(enabled, bool):
        raise InvalidParameterError(f"{name}['enabled'] must be true or false, got {shown(enabled)}")
    low, high = value.get("min_number_of_allocations"), value.get("max_number_of_allocations")
    low = None if low is None else positive_int(f"{name}['min_number_of_allocations']", low, minimum=0)
    high = None if high is None else positive_int(f"{name}['max_number_of_allocations']", high)
    if low is not None and high is not None and low > high:
        raise InvalidParameterError(
            f"{name}: min_number_of_allocations ({low}) must not be larger than max_number_of_allocations ({high})"
        )
    return AdaptiveAllocations(enabled, low, high)


def _parse_mapping_text(name: str, text: str) -> Any:
    value = _literal(text)
    if value is _NOT_A_LITERAL:
        raise InvalidParameterError(f"{name} must be a dict, got the string {shown(text)}")
    return value


def parse_list_text(text: str) -> Any:
    """A list rendered by a template: JSON, or the Python literal that ``{{ ti.xcom_pull(...) }}`` renders."""
    value = _literal(text)
    if value is _NOT_A_LITERAL:
        raise InvalidParameterError(f"docs is a string but not a JSON or Python list: {shown(text)}")
    return value


def check_return_results(value: Any) -> bool | str:
    """``return_results``: True, False or ``"auto"``."""
    if value not in (True, False, "auto"):
        raise InvalidParameterError(f"return_results must be True, False or 'auto', got {shown(value)}")
    return value


_NOT_A_LITERAL: Any = object()


def _literal(text: str) -> Any:
    """``text`` read as JSON, else as a Python literal (what a template renders from a dict or a list)."""
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError):
            continue
    return _NOT_A_LITERAL


def parse_settings(number_of_allocations: Any, adaptive_allocations: Any) -> Settings:
    """What the caller asked for: exactly one of a fixed count or adaptive settings."""
    number_given, adaptive_given = not is_unset(number_of_allocations), not is_unset(adaptive_allocations)
    if number_given == adaptive_given:
        raise InvalidParameterError(
            "give exactly one of number_of_allocations and adaptive_allocations, got "
            f"number_of_allocations={shown(number_of_allocations)} and "
            f"adaptive_allocations={shown(adaptive_allocations)}"
        )
    from airflow_esml.core.settings import Settings  # a dataclass: built when first parsed

    if number_given:
        return Settings(number_of_allocations=positive_int("number_of_allocations", number_of_allocations))
    return Settings(adaptive_allocations=parse_adaptive(adaptive_allocations))


# -- reservations (time windows) ---------------------------------------------------------------------------

#: how long a reservation outlives its window's end when the run that releases it never comes
DEFAULT_RESERVATION_GRACE = timedelta(minutes=15)
#: the longest lead: a reservation is taken less than a day before its window opens
MAX_LEAD_MINUTES = 24 * 60 - 1


def parse_clock(name: str, value: Any) -> time:
    """A local time of day: an hour (``8``, ``"8"``) or ``"HH:MM"`` (``"08:30"``); templates render strings."""
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    hour, _, minute = text.partition(":")
    if hour.isdigit() and (minute.isdigit() or not minute) and len(minute) in (0, 2):
        h, m = int(hour), int(minute or 0)
        if h < 24 and m < 60:
            return time(h, m)
    raise InvalidParameterError(f"{name} must be an hour from 0 to 23 or a time 'HH:MM', got {shown(value)}")


def parse_timezone(value: Any) -> str:
    """``timezone``: an IANA timezone name such as ``Europe/Amsterdam``, or ``UTC``."""
    if isinstance(value, str) and value.strip():
        try:
            ZoneInfo(value.strip())
            return value.strip()
        except (ZoneInfoNotFoundError, ValueError):
            pass
    raise InvalidParameterError(
        f"timezone must be an IANA timezone name such as 'Europe/Amsterdam', got {shown(value)}"
    )


_DAY_NAMES = {name: number for number, name in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"), 1)}


def parse_weekdays(value: Any) -> frozenset[int]:
    """``weekdays`` as ISO weekdays (1 = Monday): the cron day-of-week field (``"*"``, ``"1-5"``, ``"mon-fri"``,
    ``"1,3,5"``; 0 and 7 are Sunday) or a list of such numbers."""

    def day(token: str) -> int:
        token = token.strip().lower()
        if token in _DAY_NAMES:
            return _DAY_NAMES[token]
        if token.isdigit() and int(token) <= 7:
            return int(token) or 7
        raise InvalidParameterError(f"weekdays: {shown(token)} is not a weekday (0-7 or mon-sun), in {shown(value)}")

    if isinstance(value, (list, tuple, set, frozenset)):
        text = ",".join(str(v) for v in value)
    elif isinstance(value, (str, int)) and not isinstance(value, bool):
        text = str(value)
    else:
        raise InvalidParameterError(f"weekdays must be a cron day-of-week field such as '1-5', got {shown(value)}")
    if text.strip() == "*":
        from airflow_esml.core.window import ALL_WEEKDAYS

        return ALL_WEEKDAYS
    days: set[int] = set()
    for part in text.split(","):
        low, dash, high = part.partition("-")
        first, last = day(low), day(high) if dash else day(low)
        if first > last:
            raise InvalidParameterError(f"weekdays: the range {shown(part.strip())} runs backwards, in {shown(value)}")
        days.update(range(first, last + 1))
    return frozenset(days)


def parse_window_spec(start: Any, end: Any, timezone: Any, lead_minutes: Any = 0, weekdays: Any = "*") -> WindowSpec:
    """A daily window from (possibly rendered) task parameters; see :class:`~airflow_esml.core.window.WindowSpec`.

    ``end`` earlier than ``start`` is an overnight window; ``end`` equal to ``start`` is refused.
    """
    opens, closes = parse_clock("start", start), parse_clock("end", end)
    if opens == closes:
        raise InvalidParameterError(f"start and end must differ, got {shown(start)} and {shown(end)}")
    lead = positive_int("lead_minutes", lead_minutes, minimum=0)
    if lead > MAX_LEAD_MINUTES:
        raise InvalidParameterError(f"lead_minutes must be less than a day ({MAX_LEAD_MINUTES + 1}), got {lead}")
    from airflow_esml.core.window import WindowSpec  # a dataclass: built when first parsed

    return WindowSpec(opens, closes, parse_timezone(timezone), timedelta(minutes=lead), parse_weekdays(weekdays))
