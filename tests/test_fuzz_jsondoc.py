"""Property-based fuzzing of the one JSON parser (issue 12): a value or ``JsonRefused``, nothing else.

``parse_json`` reads every JSON body Kith takes from outside, so whatever bytes arrive it
must either return a document or raise its documented refusal (which the doors turn into
a 400). Where it returns, the document must be one PostgreSQL can store: no NUL, no lone
surrogate, no nesting past the cap. Valid shallow documents must come back unchanged.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from server.jsondoc import MAX_DEPTH, JsonRefused, depth_exceeds, parse_json

PURE = settings(max_examples=200, deadline=None)

# Strings as a hostile peer may send them: any code point, surrogates and NUL included.
any_text = st.text(st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()))
plain_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=20)

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | plain_text
json_docs = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(plain_text, inner, max_size=4),
    max_leaves=20,
)


def _nested(depth: int) -> Any:
    doc: Any = 1
    for level in range(depth):
        doc = [doc] if level % 2 else {"k": doc}
    return doc


def _storable(doc: Any) -> bool:
    """Whether every string and key of ``doc`` encodes as UTF-8 without a NUL (what PostgreSQL text needs)."""
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return False
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return True


def _parse_or_refuse(data: bytes | str) -> Any:
    """``parse_json``'s answer, or the ``JsonRefused`` it raised; any other exception fails the test."""
    try:
        doc = parse_json(data)
    except JsonRefused as exc:
        assert str(exc), "a refusal always says why"
        return exc
    assert not depth_exceeds(doc, MAX_DEPTH)
    assert _storable(doc)
    return doc


@PURE
@given(st.binary(max_size=300))
@example(b"\xff\xfe{\x00}\x00")  # UTF-16 by its byte order mark
@example(b"\x00\x00\x00{")  # UTF-32 guessed from the NULs
@example(b'"\\ud800"')
@example(b"1" * 5000)  # past int()'s digit limit: a ValueError inside json
@example(b"[" * 3000)
def test_arbitrary_bytes_parse_or_are_refused(data: bytes) -> None:
    _parse_or_refuse(data)


@PURE
@given(any_text)
@example('{"a": "\\u0000"}')
@example('["\\udfff", "\\ud83d\\ude00"]')
@example("\ud800")  # a lone surrogate as a raw character of a str, not an escape
@example('"\ud800"')
@example('{"\udc00": 1}')
def test_arbitrary_text_parses_or_is_refused(text: str) -> None:
    _parse_or_refuse(text)


@PURE
@given(json_docs, st.sampled_from(["utf-8", "utf-16", "utf-32"]), st.booleans())
@example({"\\u0000": None}, "utf-8", False)  # a backslash, then "u0000": no NUL (was refused)
def test_valid_shallow_documents_round_trip(doc: Any, encoding: str, ascii_only: bool) -> None:
    text = json.dumps(doc, ensure_ascii=ascii_only)
    assert parse_json(text) == doc
    assert parse_json(text.encode(encoding)) == doc


@PURE
@given(st.integers(min_value=1, max_value=3 * MAX_DEPTH), st.sampled_from([str, bytes]))
def test_depth_cap_is_exact(depth: int, kind: type) -> None:
    """Up to ``MAX_DEPTH`` levels parse; one more is refused for its depth, whatever the spelling."""
    text = json.dumps(_nested(depth))
    data = text if kind is str else text.encode()
    if depth <= MAX_DEPTH:
        assert parse_json(data) == _nested(depth)
    else:
        try:
            parse_json(data)
        except JsonRefused as exc:
            assert "nested deeper" in str(exc)
        else:
            raise AssertionError(f"{depth} levels accepted")


@PURE
@given(json_docs, st.sampled_from(["\\u0000", "\\ud800", "\\uDFFF", "\\udbff"]), st.data())
def test_a_nul_or_lone_surrogate_anywhere_is_refused(doc: Any, poison: str, data: st.DataObject) -> None:
    """Plant the poison in any string position of a valid document: always refused."""
    text = json.dumps({"wrap": doc})
    quotes = [i for i, ch in enumerate(text) if ch == '"']
    # Inside a string: right after an opening quote (every other quote opens one).
    at = data.draw(st.sampled_from(quotes[::2])) + 1
    poisoned = text[:at] + poison + text[at:]
    try:
        parse_json(poisoned)
    except JsonRefused:
        return
    raise AssertionError(f"accepted {poisoned!r}")
