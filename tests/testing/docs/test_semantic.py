"""``semantic_text`` chunking and storage, without HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_esml.testing.docs.semantic import EndpointRef, SemanticText, chunks
from airflow_esml.testing.protocol import EsError, EsVersion


def test_chunks_cover_the_text_in_word_windows() -> None:
    text = "  alpha beta\ngamma delta epsilon "
    spans = chunks(text, words=2)
    assert [text[a:b] for a, b in spans] == ["alpha beta", "gamma delta", "epsilon"]
    assert chunks("", words=2) == [(0, 0)]


def fake_infer(calls: list[tuple[str, list[Any]]], fail: frozenset[str] = frozenset()) -> Any:
    def infer(ident: str, texts: list[Any]) -> list[Any]:
        calls.append((ident, list(texts)))
        return [EsError(429, "status_exception", "full") if t in fail else {"predicted_value": [1.0]} for t in texts]

    return infer


@pytest.mark.parametrize("version", ["8.17.0", "9.1.0"])
def test_fill_per_version_and_failures(version: str) -> None:
    calls: list[tuple[str, list[Any]]] = []
    endpoint = EndpointRef("ep", "dep", dimensions=1)
    filler = SemanticText(
        version=EsVersion.parse(version),
        lookup=lambda i: endpoint if i == "ep" else None,
        infer=fake_infer(calls, frozenset({"bad"})),
    )
    docs: list[tuple[dict[str, Any], dict[str, Any]]] = [({"f": "good text"}, {}), ({"f": "bad"}, {}), ({"g": 1}, {})]
    outcomes = filler.fill({"f": "ep"}, docs)
    assert calls == [("dep", ["good text", "bad"])]
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], EsError) and outcomes[1].status == 429
    if version.startswith("8."):
        assert docs[0][0]["f"]["inference"]["chunks"] == [{"text": "good text", "embeddings": [1.0]}]
        assert docs[0][1] == {}
    else:
        assert docs[0][0] == {"f": "good text"}
        chunk = docs[0][1]["f"]["inference"]["chunks"]["f"]
        assert chunk == [{"start_offset": 0, "end_offset": 9, "embeddings": [1.0]}]
    assert docs[2] == ({"g": 1}, {})


def test_unknown_endpoint_fails_only_documents_with_the_field() -> None:
    filler = SemanticText(version=EsVersion(9, 0), lookup=lambda i: None, infer=fake_infer([]))
    outcomes = filler.fill({"f": "missing"}, [({"f": "x"}, {}), ({}, {})])
    assert isinstance(outcomes[0], EsError) and outcomes[0].reason == "Inference id [missing] not found for field [f]"
    assert outcomes[1] is None
