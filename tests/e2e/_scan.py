"""Find secrets where they must not be: log files, API answers, exception text."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote


def secret_forms(secret: str) -> set[str]:
    """
    The spellings under which a secret could leak: as is, URL-quoted, base64 (alone or as ``id:key``).

    :param secret: the secret.
    """
    forms = {secret, quote(secret, safe="")}
    forms.add(base64.b64encode(secret.encode()).decode().rstrip("="))
    return {form for form in forms if len(form) >= 8}


def find_leaks(secrets: Mapping[str, str], texts: Mapping[str, str]) -> list[str]:
    """
    Return ``"<secret label> in <source>"`` for every secret spelling found in any text.

    :param secrets: label -> secret value.
    :param texts: source name -> text to search.
    """
    leaks: list[str] = []
    for label, secret in secrets.items():
        forms = secret_forms(secret)
        leaks.extend(f"{label} in {source}" for source, text in texts.items() if any(f in text for f in forms))
    return sorted(leaks)


def read_files(paths: Iterable[Path]) -> dict[str, str]:
    """Read files as text (undecodable bytes replaced) keyed by path."""
    return {str(path): path.read_text(encoding="utf-8", errors="replace") for path in paths}


def as_text(value: Any) -> str:
    """Serialise an API answer for searching."""
    return json.dumps(value, default=str, sort_keys=True)
