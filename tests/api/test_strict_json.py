"""The pure strict-JSON parser: everything ordinary round-trips; anything else is a
``JSONInputError`` (a 400 with a reason), never another exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alertengine import strict_json
from alertengine.strict_json import MAX_DEPTH, MAX_INT, JSONInputError

text = st.text(st.characters(codec="utf-8"))  # no lone surrogates: real text
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-MAX_INT - 1, MAX_INT)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(text, inner, max_size=5),
    max_leaves=30,
)


@given(values, st.booleans())
def test_ordinary_json_round_trips(value, ascii_only):
    raw = json.dumps(value, ensure_ascii=ascii_only)  # \\uXXXX pairs or raw UTF-8 alike
    assert strict_json.loads(raw.encode()) == value
    assert strict_json.loads(raw) == value


@settings(max_examples=300)
@given(st.binary(max_size=300) | text.map(lambda s: s.encode()))
def test_any_bytes_parse_or_are_refused_with_a_reason(raw):
    try:
        strict_json.loads(raw)
    except JSONInputError as exc:
        assert str(exc)


@given(st.integers(1, 3 * MAX_DEPTH), st.sampled_from(["[", '{"k":']))
def test_depth_is_bounded_exactly(depth, opener):
    closer = "]" if opener == "[" else "}"
    inner = "[]" if opener == "[" else "{}"
    raw = opener * (depth - 1) + inner + closer * (depth - 1)
    if depth <= MAX_DEPTH:
        strict_json.loads(raw)
    else:
        with pytest.raises(JSONInputError, match="nested deeper"):
            strict_json.loads(raw)


@given(text, st.integers(0xD800, 0xDFFF))
def test_a_lone_surrogate_anywhere_is_refused(prefix, code):
    escaped = json.dumps(prefix)[:-1] + f"\\u{code:04x}" + '"'
    for raw in (escaped, '{"k": [' + escaped + "]}", "{" + escaped + ": 1}"):
        with pytest.raises(JSONInputError, match="surrogate"):
            strict_json.loads(raw)


def test_an_escaped_backslash_before_u_is_not_a_surrogate():
    assert strict_json.loads(r'"\\ud800"') == "\\ud800"
