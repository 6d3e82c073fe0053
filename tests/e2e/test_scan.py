"""The leak scanner itself: it must find a secret in every spelling it claims to cover."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest

from tests.e2e._scan import find_leaks, secret_forms

SECRET = "k3y/with+odd=chars-0123456789"


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: ApiKey {SECRET}",
        f"url?api_key={quote(SECRET, safe='')}",
        f"header {base64.b64encode(SECRET.encode()).decode()}",
    ],
)
def test_finds_each_spelling(text: str) -> None:
    assert find_leaks({"key": SECRET}, {"log": "before\n" + text + "\nafter"}) == ["key in log"]


def test_clean_text_and_masked_secret_pass() -> None:
    assert find_leaks({"key": SECRET}, {"log": "api_key=***", "xcom": '{"has_api_key": true}'}) == []


def test_short_spellings_are_not_searched() -> None:
    assert secret_forms("abc") == set()
