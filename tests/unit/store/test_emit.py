"""The fast YAML emitter: everything it writes loads back exactly with the safe loader."""

from __future__ import annotations

import datetime
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wiretape import model
from wiretape.errors import StoreError
from wiretape.store import format as fmt
from wiretape.store import yamlio
from wiretape.store.emit import CannotEmit, emit
from wiretape.store.yamlio import FlowList

HYPO = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def load(text: str) -> Any:
    return yaml.load(text, Loader=yaml.CSafeLoader)


def old_dump(doc: Any) -> str:
    """What ``yamlio.dump`` wrote before the fast emitter."""
    return yaml.dump(
        doc,
        Dumper=yamlio.Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=120,
    )


def same(a: Any, b: Any) -> bool:
    """Equal with the same types all the way down; FlowList and tuple load back as list."""
    if isinstance(a, FlowList | tuple):
        a = list(a)
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, dict):
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb)
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def round_trips(doc: Any) -> str:
    text = emit(doc, FlowList)
    back = load(text)
    assert same(doc, back), f"{doc!r}\n---\n{text}---\n{back!r}"
    return text


# --- tricky scalars --------------------------------------------------------------------------

TRICKY_STRINGS = [
    "",
    " ",
    "  ",
    " a",
    "a ",
    "a  b",
    "yes",
    "Yes",
    "YES",
    "no",
    "No",
    "on",
    "Off",
    "y",
    "n",
    "true",
    "False",
    "TRUE",
    "null",
    "Null",
    "NULL",
    "~",
    "1",
    "-1",
    "+1",
    "01",
    "0o17",
    "017",
    "0x1F",
    "0b101",
    "1_000",
    "1:20",
    "190:20:30",
    "1.0",
    "1.",
    ".5",
    "1e20",
    "1e+20",
    "1.0e+20",
    "-.inf",
    ".Inf",
    ".NaN",
    "nan",
    "inf",
    "2026-11-21",
    "2026-11-21T10:00:00Z",
    "2001-12-14 21:59:43.10 -5",
    "<<",
    "=",
    "a: b",
    "a:b",
    "a:",
    ":a",
    "a #b",
    "a#b",
    "#x",
    "- x",
    "-x",
    "-",
    "--",
    "---",
    "--- x",
    "...",
    "... x",
    "?",
    "? x",
    "?x",
    "@x",
    "`x",
    "%x",
    "!x",
    "!!str",
    "&a",
    "*a",
    "|",
    ">",
    "[x]",
    "{x}",
    "x,y",
    "a, b",
    "'",
    '"',
    "it's",
    'say "hi"',
    "''",
    "\\",
    "C:\\path\\",
    "a\tb",
    "\t",
    "a\rb",
    "a\r\nb\r\n",
    "\x85",
    "a\x85b",
    "\u2028",
    "a\u2029b",
    "\ufeff",
    "\ufeffa",
    "\x00",
    "\x07\x08\x0b\x0c\x1b\x7f",
    "\x9f",
    "\xa0",
    "\xa0a\xa0",
    "\ufffe\uffff",
    "\ud7ff\ue000\ufffd",
    "\U0001f600",
    "emoji \U0001f600 text",
    "\U0010ffff",
    "é",
    "日本語",
    "x" * 5000,
    "a b " * 300,
    "/api/orders?x=1&y=2",
    "https://example.com/a#frag",
    "text/html; charset=utf-8",
    "Mon, 01 Jan 2026 00:00:00 GMT",
]

MULTILINE_STRINGS = [
    "\n",
    "\n\n",
    "a\n",
    "a\nb",
    "a\nb\n",
    "a\n\n",
    "a\n\n\n",
    "\na",
    "\n\na\n",
    " a\nb",
    "  a\n b\n",
    "a\n b",
    "a \nb",
    "a\nb ",
    "a\n \nb",
    "a\n   \n",
    "a\n\tb",
    "\ta\nb",
    "a\r\nb",
    "a\n\x85b",
    "a\n\u2028",
    "a\n\ufeffb",
    "# not a comment\n- not a list\n--- not a document\n... nor this\n",
    "key: value\n  nested: [1, 2]\n",
    "'quoted'\n\"double\"\n",
    "trailing backslash \\\nnext",
    "\\\n\\",
    "x\n" * 200,
    "line with trailing spaces  \n" * 20,
    "\tx\r\n" * 30,
    " lead\n  \n" * 20,
    "\n \n" * 40,
    ("a" * 90 + "\n") * 3 + "\x00",
    "emoji \U0001f600\nline",
    "yes\nno",
]


@pytest.mark.parametrize("s", TRICKY_STRINGS + MULTILINE_STRINGS)
def test_string_round_trips_in_every_position(s: str) -> None:
    round_trips({"v": s})
    round_trips({"h": [FlowList([s, s])]})
    round_trips([s, [s], {"k": s, "l": [s]}])
    round_trips({"a": [{"b": {"c": [[s]]}}]})
    round_trips({"a": s, "b": {"c": s}, "z": 1})  # something follows the value
    try:
        round_trips({s: 1, "x": {s: [s]}})
    except CannotEmit:  # too long for a simple key: PyYAML writes it
        assert len(s) > 100
        assert load(yamlio.dump({s: 1})) == {s: 1}


@pytest.mark.parametrize("s", TRICKY_STRINGS + MULTILINE_STRINGS)
def test_dump_agrees_with_pyyaml_on_the_value(s: str) -> None:
    doc = {"v": s, "pair": FlowList(["Name", s])}
    assert load(yamlio.dump(doc)) == load(old_dump(doc)) == doc


@pytest.mark.parametrize(
    "value",
    [
        0,
        1,
        -1,
        10**40,
        -(10**40),
        2**63,
        0.0,
        -0.0,
        1.5,
        -2.25,
        1e20,
        1e16,
        1e-5,
        1e-7,
        -1e300,
        5e-324,
        1.7976931348623157e308,
        123456789.123,
        0.1 + 0.2,
        float("inf"),
        float("-inf"),
        float("nan"),
        True,
        False,
        None,
    ],
)
def test_other_scalars_round_trip_with_their_types(value: Any) -> None:
    round_trips({"v": value})
    round_trips({"h": [FlowList([value, "x"])]})
    round_trips([value])
    if not (isinstance(value, float) and math.isnan(value)):
        round_trips({value: "k"})


def test_floats_are_written_like_pyyaml() -> None:
    assert emit({"a": 1e20, "b": 1.0, "c": -0.0, "d": 1e-7}) == (
        "a: 1.0e+20\nb: 1.0\nc: -0.0\nd: 1.0e-07\n"
    )
    inf = float("inf")
    assert emit({"a": inf, "b": -inf, "c": float("nan")}) == "a: .inf\nb: -.inf\nc: .nan\n"


def test_scalar_styles() -> None:
    text = emit({"a": "plain text", "b": "yes", "c": "it's: x", "d": "tab\tx", "e": "", "f": 7})
    assert text == "a: plain text\nb: 'yes'\nc: 'it''s: x'\nd: \"tab\\tx\"\ne: ''\nf: 7\n"
    assert emit({"v": "\x00\x85\u2028\ufeff\U0001f600"}) == 'v: "\\0\\N\\L\\uFEFF\U0001f600"\n'


def test_literal_blocks_and_their_indicators() -> None:
    assert emit({"t": "one\ntwo\n"}) == "t: |\n  one\n  two\n"
    assert emit({"t": "one\ntwo"}) == "t: |-\n  one\n  two\n"
    assert emit({"t": "one\n\n"}) == "t: |+\n  one\n\n"
    assert emit({"t": " one\ntwo"}) == "t: |2-\n   one\n  two\n"
    assert emit({"t": "\none"}) == "t: |2-\n\n  one\n"
    assert emit({"l": ["a\nb\n"]}) == "l:\n- |\n  a\n  b\n"
    assert emit([{"t": "a\nb"}]) == "- t: |-\n    a\n    b\n"


def test_multiline_strings_that_cannot_be_literal_are_double_quoted() -> None:
    assert round_trips({"t": "a \n b\r\nc\t"}) == 't: "a \\n b\\r\\nc\\t"\n'
    long = "first line  \n second line\r\n" * 3 + "\tlast"
    text = round_trips({"t": long})
    pair = "first line  \\n\\\n  \\ second line\\r\\n\\\n  "
    assert text == 't: "' + pair * 3 + '\\tlast"\n'


def test_layout_matches_the_pyyaml_dumper() -> None:
    doc = {
        "format": "wiretape/v1",
        "request": {
            "method": "GET",
            "headers": [FlowList(["Host", "a:80"]), FlowList(["Date", "Mon, 01 Jan"])],
            "empty": [],
            "none": {},
        },
        "list": [{"a": 1, "b": [1, [2, 3], {}]}, [[{"q": "w"}]], "x\ny\n", FlowList([])],
        "body": {"text": "one\ntwo\n"},
        "n": None,
        "t": True,
    }
    assert emit(doc, FlowList) == old_dump(doc)
    assert emit(doc, FlowList) == yamlio.dump(doc)


def test_top_level_shapes() -> None:
    assert emit({}) == "{}\n"
    assert emit([]) == "[]\n"
    assert emit(["a", 1]) == "- a\n- 1\n"
    assert emit(FlowList(["a", "b: c"]), FlowList) == "[a, 'b: c']\n"
    with pytest.raises(CannotEmit):
        emit("text")


def test_shared_objects_are_written_twice_without_aliases() -> None:
    shared = {"a": [1]}
    text = round_trips({"x": shared, "y": shared})
    assert "&" not in text and "*" not in text


# --- what falls back to PyYAML ---------------------------------------------------------------


@pytest.mark.parametrize(
    "doc",
    [
        {"when": datetime.datetime(2026, 1, 31, 12, 0)},
        {"day": datetime.date(2026, 1, 31)},
        {"raw": b"\x00\x01"},
        {"set": {1, 2}},
        {"k" * 200: 1},
        {"h": [FlowList([["nested"], "x"])]},
        {(1, 2): "tuple key"},
    ],
)
def test_values_outside_the_rules_fall_back_to_pyyaml(doc: dict[str, Any]) -> None:
    with pytest.raises(CannotEmit):
        emit(doc, FlowList)
    assert yamlio.dump(doc) == old_dump(doc)


def test_subclasses_of_the_plain_types_fall_back() -> None:
    class Name(str):
        pass

    with pytest.raises(CannotEmit):
        emit({"v": Name("x")}, FlowList)


def test_lone_surrogates_cannot_be_emitted_and_dump_still_says_why() -> None:
    for doc in ({"v": "a\ud800"}, {"\udc80": 1}, {"h": [FlowList(["x", "\udfff"])]}):
        with pytest.raises(CannotEmit):
            emit(doc, FlowList)
        with pytest.raises(StoreError, match="surrogate"):
            yamlio.dump(doc)


def test_ints_too_long_for_str_behave_as_before() -> None:
    with pytest.raises(CannotEmit):
        emit({"v": 10**5000})
    with pytest.raises(ValueError):
        yamlio.dump({"v": 10**5000})


def test_deep_nesting_falls_back() -> None:
    doc: dict[str, Any] = {}
    node = doc
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(CannotEmit):
        emit(doc)


# --- properties ------------------------------------------------------------------------------

FRAGMENTS = [
    *(s for s in TRICKY_STRINGS if len(s) < 40),
    *(s for s in MULTILINE_STRINGS if len(s) < 40),
    "\r\n",
    "\n",
    " ",
    ": ",
    " #",
    "0",
    "e",
    "E+3",
    ".",
    "_",
]
CHARS = st.characters(exclude_categories=["Cs"])
NASTY_TEXT = (
    st.text(CHARS, max_size=12)
    | st.sampled_from(FRAGMENTS)
    | st.lists(st.sampled_from(FRAGMENTS) | st.text(CHARS, max_size=3), max_size=6).map("".join)
)
KEYS = NASTY_TEXT.filter(lambda s: len(s) < 40) | st.integers(-1000, 1000) | st.booleans()
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
SCALARS = (
    st.none() | st.booleans() | st.integers() | st.integers(-(10**60), 10**60) | FLOATS | NASTY_TEXT
)


def trees(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.dictionaries(KEYS, children, max_size=4)
        | st.lists(SCALARS, max_size=3).map(FlowList)
    )


DOCS = st.dictionaries(KEYS, st.recursive(SCALARS, trees, max_leaves=20), max_size=6) | st.lists(
    st.recursive(SCALARS, trees, max_leaves=12), max_size=4
)


@HYPO
@given(DOCS)
def test_any_document_round_trips_exactly(doc: Any) -> None:
    text = round_trips(doc)
    assert yamlio.dump(doc) == text


@HYPO
@given(NASTY_TEXT, NASTY_TEXT)
def test_any_text_round_trips_as_value_key_and_header(key: str, value: str) -> None:
    doc: dict[str, Any] = {"v": value, "h": [FlowList([key, value])], "l": [value, {"x": value}]}
    if len(key) < 40:
        doc[key] = value
    round_trips(doc)


@settings(max_examples=200, deadline=None)
@given(st.text(CHARS, max_size=200))
def test_any_unicode_text_round_trips(text: str) -> None:
    round_trips({"v": text, "p": FlowList([text]), "s": [text]})


# --- store documents -------------------------------------------------------------------------

HEADER_TEXT = st.text(st.characters(max_codepoint=0xFF), max_size=16) | st.sampled_from(FRAGMENTS)
HEADERS = st.lists(st.tuples(HEADER_TEXT, HEADER_TEXT), max_size=4).map(tuple)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | NASTY_TEXT,
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(NASTY_TEXT, kids, max_size=3),
    max_leaves=10,
)
BODIES = (
    st.binary(max_size=300)
    | st.text(CHARS, max_size=60).map(str.encode)
    | NASTY_TEXT.map(str.encode)
    | JSON_VALUES.map(lambda v: json.dumps(v, ensure_ascii=False).encode())
)
JSON_TYPE = ("Content-Type", "application/json")


@st.composite
def requests(draw: st.DrawFn) -> model.HttpRequest:
    return model.HttpRequest(
        method=draw(st.sampled_from(["GET", "POST", "PATCH"])),
        target=draw(NASTY_TEXT.map(lambda t: "/" + t)),
        headers=(JSON_TYPE, *draw(HEADERS)),
        body=draw(BODIES),
        host=draw(st.sampled_from(["", "api.example.test:8443"])),
        trailers=draw(HEADERS),
    )


@st.composite
def responses(draw: st.DrawFn) -> model.HttpResponse | None:
    if draw(st.integers(0, 4)) == 0:
        return None
    return model.HttpResponse(
        status=draw(st.integers(100, 599)),
        reason=draw(NASTY_TEXT),
        headers=(JSON_TYPE, *draw(HEADERS)),
        body=draw(BODIES),
    )


@st.composite
def cases(draw: st.DrawFn) -> model.TestCase:
    return model.TestCase(
        id=fmt.test_id_for(draw(st.integers(1, 99999)), "GET", "/x"),
        request=draw(requests()),
        response=draw(responses()),
        error=draw(st.none() | NASTY_TEXT),
        noise=tuple(draw(st.lists(NASTY_TEXT, max_size=2))),
        started=draw(st.floats(0, 4e9)),
        duration=draw(st.floats(0, 1e5)),
        upgraded=draw(st.booleans()),
    )


@st.composite
def mocks(draw: st.DrawFn) -> model.Mock:
    return model.Mock(
        id=draw(NASTY_TEXT),
        dep=draw(st.sampled_from(["db", "payments", "outbound"])),
        protocol="http",
        request=draw(requests()),
        response=draw(responses()),
        test=None,
        link=draw(st.sampled_from(list(model.LinkKind))),
        candidates=tuple(draw(st.lists(NASTY_TEXT, max_size=2))),
        error=draw(st.none() | NASTY_TEXT),
        started=draw(st.floats(0, 4e9)),
        duration=draw(st.floats(0, 1e5)),
    )


@pytest.fixture(scope="module")
def bodies_dir() -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(test=cases())
def test_test_documents_load_back_equal(test: model.TestCase, bodies_dir: Path) -> None:
    doc = fmt.test_to_doc(test, bodies_dir)
    text = round_trips(doc)
    assert yamlio.dump(doc) == text
    assert load(old_dump(doc)) == load(text)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(items=st.lists(mocks(), max_size=3), owner=st.none() | st.just("0001-get-x"))
def test_mock_documents_load_back_equal(
    items: list[model.Mock], owner: str | None, bodies_dir: Path
) -> None:
    doc = fmt.mocks_to_doc(owner, items, bodies_dir)
    text = round_trips(doc)
    assert yamlio.dump(doc) == text
