from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path

import brotli
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wiretape.compare.diff import (
    DEFAULT_IGNORED_HEADERS,
    TEXT_DIFF_LINES,
    Difference,
    compare_json,
    compare_responses,
)
from wiretape.compare.paths import Concrete, format_path
from wiretape.model import BlobRef, Headers, HttpResponse

JSON_CT = (("Content-Type", "application/json"),)


def response(
    body: bytes = b"", headers: Headers = (), status: int = 200, reason: str = "OK"
) -> HttpResponse:
    return HttpResponse(status=status, reason=reason, headers=headers, body=body)


def json_response(value: object, headers: Headers = JSON_CT, status: int = 200) -> HttpResponse:
    return response(json.dumps(value).encode(), headers, status)


def paths(diffs: list[Difference]) -> list[str]:
    return [d.path for d in diffs]


# --- status and headers ----------------------------------------------------------------


def test_identical_responses_have_no_differences() -> None:
    r = json_response({"a": [1, 2, {"b": None}]}, (*JSON_CT, ("X-A", "1")))
    assert compare_responses(r, r) == []


def test_status_compared_exactly_reason_ignored() -> None:
    diffs = compare_responses(response(status=200), response(status=201, reason="Created"))
    assert diffs == [Difference("status", "changed", 200, 201)]
    assert compare_responses(response(reason="OK"), response(reason="Fine")) == []


def test_header_changed_missing_added_keep_spelling_and_order() -> None:
    expected = response(headers=(("X-B", "1"), ("X-Gone", "x"), ("X-A", "2")))
    actual = response(headers=(("x-a", "3"), ("x-b", "1"), ("X-New", "n")))
    assert compare_responses(expected, actual) == [
        Difference("header.X-Gone", "missing", "x", None),
        Difference("header.X-A", "changed", "2", "3"),
        Difference("header.X-New", "added", None, "n"),
    ]


def test_header_values_are_a_multiset() -> None:
    expected = response(headers=(("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")))
    reordered = response(headers=(("set-cookie", "b=2"), ("set-cookie", "a=1")))
    assert compare_responses(expected, reordered) == []
    fewer = response(headers=(("set-cookie", "a=1"),))
    assert compare_responses(expected, fewer) == [
        Difference("header.Set-Cookie", "changed", ["a=1", "b=2"], ["a=1"])
    ]


def test_default_ignored_headers() -> None:
    expected = response(headers=(("Date", "Mon"), ("X-Request-Id", "1"), ("Server", "a")))
    actual = response(headers=(("Date", "Tue"), ("traceparent", "00-x"), ("Server", "b")))
    assert compare_responses(expected, actual) == []
    assert "transfer-encoding" in DEFAULT_IGNORED_HEADERS
    assert all(name == name.lower() for name in DEFAULT_IGNORED_HEADERS)
    diffs = compare_responses(expected, actual, ignore_headers=())
    assert paths(diffs) == [
        "header.Date",
        "header.X-Request-Id",
        "header.Server",
        "header.traceparent",
    ]


def test_ignore_headers_is_case_insensitive() -> None:
    expected, actual = response(headers=(("X-A", "1"),)), response(headers=(("X-A", "2"),))
    assert compare_responses(expected, actual, ignore_headers={"X-A"}) == []


def test_content_length_ignored_only_when_bodies_equal() -> None:
    compact = response(b'{"a":1}', (*JSON_CT, ("Content-Length", "7")))
    spaced = response(b'{"a": 1}', (*JSON_CT, ("Content-Length", "8")))
    assert compare_responses(compact, spaced) == []
    other = response(b'{"a": 22}', (*JSON_CT, ("Content-Length", "9")))
    assert paths(compare_responses(compact, other)) == ["header.Content-Length", "body.a"]
    noise = ["body.a"]
    assert compare_responses(compact, other, noise=noise) == []


def test_noise_hides_status_and_headers() -> None:
    expected = response(headers=(("X-Trace", "1"), ("X-Other", "1")), status=200)
    actual = response(headers=(("x-trace", "2"), ("x-other", "2"), ("X-Added", "1")), status=500)
    assert compare_responses(expected, actual, noise=["status", "header.*"]) == []
    diffs = compare_responses(expected, actual, noise=["header.X-TRACE"])
    assert paths(diffs) == ["status", "header.X-Other", "header.X-Added"]


def test_bad_noise_path_raises_value_error() -> None:
    with pytest.raises(ValueError, match="position"):
        compare_responses(response(), response(), noise=["body["])


# --- JSON bodies -----------------------------------------------------------------------


def test_json_structural_rules() -> None:
    expected = {"a": 1, "b": [1, 2, 3], "c": {"d": "x"}, "e": True, "f": None}
    actual = {"f": None, "e": True, "c": {"d": "x"}, "b": [1.0, 2, 3], "a": 1.0}
    assert compare_responses(json_response(expected), json_response(actual)) == []


def test_json_reports_deepest_path_and_kinds() -> None:
    expected = {"items": [{"id": 1, "total": 12.5}], "gone": 1, "t": 1, "flag": True}
    actual = {"items": [{"id": 1, "total": 13}], "new": [1], "t": "1", "flag": 1}
    assert compare_responses(json_response(expected), json_response(actual)) == [
        Difference("body.items[0].total", "changed", 12.5, 13),
        Difference("body.gone", "missing", 1, None),
        Difference("body.t", "type", 1, "1"),
        Difference("body.flag", "type", True, 1),
        Difference("body.new", "added", None, [1]),
    ]


def test_json_list_length_change_reports_indices() -> None:
    grown = compare_responses(json_response({"l": [1, 2]}), json_response({"l": [1, 2, 3, 4]}))
    assert grown == [
        Difference("body.l[2]", "added", None, 3),
        Difference("body.l[3]", "added", None, 4),
    ]
    shrunk = compare_responses(json_response([1, 2, 3]), json_response([1]))
    assert shrunk == [
        Difference("body[1]", "missing", 2, None),
        Difference("body[2]", "missing", 3, None),
    ]


def test_json_quoted_keys_in_paths() -> None:
    diffs = compare_responses(json_response({"a.b": 1}), json_response({"a.b": 2}))
    assert paths(diffs) == ['body["a.b"]']


def test_json_noise_hides_subtrees_and_wildcards() -> None:
    expected = {"items": [{"id": 1, "at": "t1"}, {"id": 2, "at": "t2"}], "meta": {"x": 1}, "k": 1}
    actual = {"items": [{"id": 1, "at": "u1"}, {"id": 2, "at": "u2"}], "meta": {"y": 2}, "k": 2}
    e, a = json_response(expected), json_response(actual)
    assert paths(compare_responses(e, a)) == [
        "body.items[0].at",
        "body.items[1].at",
        "body.meta.x",
        "body.meta.y",
        "body.k",
    ]
    assert paths(compare_responses(e, a, noise=["body.items[*].at", "body.meta"])) == ["body.k"]
    assert paths(compare_responses(e, a, noise=["body..at", "body.*"])) == []
    assert paths(compare_responses(e, a, noise=["body.items[0].at"])) == [
        "body.items[1].at",
        "body.meta.x",
        "body.meta.y",
        "body.k",
    ]
    assert compare_responses(e, a, noise=["body"]) == []


def test_noise_hides_missing_and_added_keys() -> None:
    e, a = json_response({"a": 1, "x": {"id": 1}}), json_response({"b": 1, "x": {}})
    assert compare_responses(e, a, noise=["body.a", "body.b", "body..id"]) == []


def test_json_without_content_type_is_sniffed() -> None:
    e, a = response(b'{"a": 1, "b": 2}'), response(b'{"b": 2, "a": 1.0}')
    assert compare_responses(e, a) == []
    assert paths(compare_responses(e, response(b'{"a": 2, "b": 2}'))) == ["body.a"]


def test_json_suffix_content_type() -> None:
    ct = (("Content-Type", "application/problem+json; charset=utf-8"),)
    e, a = json_response({"a": 1, "b": 2}, ct), json_response({"b": 2, "a": 3}, ct)
    assert paths(compare_responses(e, a)) == ["body.a"]


def test_json_nan_equals_itself() -> None:
    r = response(b'{"x": NaN}', JSON_CT)
    assert compare_json(float("nan"), float("nan")) == []
    assert compare_responses(r, response(b'{"x":NaN}', JSON_CT)) == []


def test_deeply_nested_json_does_not_overflow() -> None:
    depth = 5000
    expected: object = 1
    actual: object = 2
    for _ in range(depth):
        expected, actual = [expected], [actual]
    diffs = compare_json(expected, actual)
    assert len(diffs) == 1
    assert diffs[0].path.endswith("[0]" * depth)


# --- text and binary bodies ------------------------------------------------------------


def test_text_body_shows_differing_lines() -> None:
    ct = (("Content-Type", "text/html; charset=utf-8"),)
    e = response(b"<html>\n<p>hi</p>\n<b>same</b>\n</html>\n", ct)
    a = response(b"<html>\n<p>ho</p>\n<b>same</b>\n<i>new</i>\n</html>\n", ct)
    assert compare_responses(e, a) == [
        Difference("body", "changed", "<p>hi</p>", "<p>ho</p>\n<i>new</i>")
    ]


def test_text_diff_is_limited() -> None:
    ct = (("Content-Type", "text/plain"),)
    e = response("\n".join(f"line {i}" for i in range(100)).encode(), ct)
    a = response("\n".join(f"LINE {i}" for i in range(100)).encode(), ct)
    [diff] = compare_responses(e, a)
    assert isinstance(diff.expected, str) and isinstance(diff.actual, str)
    assert diff.expected.count("\n") == TEXT_DIFF_LINES
    assert diff.expected.endswith("(80 more lines)")
    assert diff.actual.startswith("LINE 0\nLINE 1")


def test_long_line_diff_is_cut_near_the_change() -> None:
    ct = (("Content-Type", "text/plain"),)
    prefix = "x" * 5000
    [diff] = compare_responses(
        response(f"{prefix}AAA".encode(), ct), response(f"{prefix}BBB".encode(), ct)
    )
    assert isinstance(diff.expected, str) and isinstance(diff.actual, str)
    assert len(diff.expected) < 400
    assert diff.expected.endswith("AAA") and diff.actual.endswith("BBB")


def test_only_line_endings_differ() -> None:
    ct = (("Content-Type", "text/plain"),)
    [diff] = compare_responses(response(b"a\r\nb\r\n", ct), response(b"a\nb\n", ct))
    assert diff.expected == json.dumps("a\r\nb\r\n") and diff.actual == json.dumps("a\nb\n")


def test_json_versus_text_is_a_text_diff() -> None:
    e = json_response({"ok": True})
    a = response(b"<h1>Bad gateway</h1>", (("Content-Type", "text/html"),))
    diffs = compare_responses(e, a)
    assert paths(diffs) == ["header.Content-Type", "body"]
    assert diffs[1].expected == '{"ok": true}' and diffs[1].actual == "<h1>Bad gateway</h1>"


def test_invalid_json_with_json_type_is_text() -> None:
    e, a = response(b"{oops", JSON_CT), response(b"{oops!", JSON_CT)
    assert compare_responses(e, a) == [Difference("body", "changed", "{oops", "{oops!")]


def test_binary_body_compared_by_hash() -> None:
    ct = (("Content-Type", "image/png"),)
    [diff] = compare_responses(response(b"\x89PNG1", ct), response(b"\x89PNG22", ct))
    assert isinstance(diff.expected, str) and isinstance(diff.actual, str)
    assert diff.expected.startswith("5 bytes sha256:")
    assert diff.actual.startswith("6 bytes sha256:")
    assert compare_responses(response(b"\x89PNG1", ct), response(b"\x89PNG1", ct)) == []


def test_undecodable_text_is_binary() -> None:
    ct = (("Content-Type", "text/plain; charset=utf-8"),)
    [diff] = compare_responses(response(b"\xff\xfe", ct), response(b"\xff\xfd", ct))
    assert str(diff.expected).startswith("2 bytes sha256:")


def test_charset_is_honoured() -> None:
    ct = (("Content-Type", "text/plain; charset=latin-1"),)
    [diff] = compare_responses(response("café".encode("latin-1"), ct), response(b"cafe", ct))
    assert diff.expected == "café"


def test_whole_body_noise_hides_text_and_binary() -> None:
    ct = (("Content-Type", "text/plain"),)
    e = response(b"a", (*ct, ("Content-Length", "1")))
    a = response(b"bb", (*ct, ("Content-Length", "2")))
    assert compare_responses(e, a, noise=["body"]) == []
    assert paths(compare_responses(e, a, noise=["body.x"])) == ["header.Content-Length", "body"]


def test_blob_bodies_are_read(tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b'{"a": 1}')
    stored = HttpResponse(200, "OK", JSON_CT, BlobRef("x", 8, str(blob)))
    assert compare_responses(stored, json_response({"a": 1})) == []
    assert paths(compare_responses(stored, json_response({"a": 2}))) == ["body.a"]


# --- content codings -------------------------------------------------------------------


def encoded(value: object, coding: str) -> HttpResponse:
    raw = json.dumps(value).encode()
    packed = {
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "raw-deflate": lambda b: zlib.compress(b, wbits=-15),
        "br": brotli.compress,
    }[coding](raw)
    header = "deflate" if coding == "raw-deflate" else coding
    return response(packed, (*JSON_CT, ("Content-Encoding", header)))


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate", "br"])
def test_encoded_bodies_are_decoded(coding: str) -> None:
    plain = json_response({"a": 1, "b": [1, 2]})
    assert paths(compare_responses(plain, encoded({"b": [1, 2], "a": 1}, coding))) == [
        "header.Content-Encoding"
    ]
    assert compare_responses(encoded({"a": 1}, coding), encoded({"a": 1}, coding)) == []
    assert paths(compare_responses(encoded({"a": 1}, coding), encoded({"a": 2}, coding))) == [
        "body.a"
    ]


def test_stacked_codings_are_undone_in_reverse() -> None:
    raw = json.dumps({"a": 1}).encode()
    both = response(
        brotli.compress(gzip.compress(raw)), (*JSON_CT, ("Content-Encoding", "gzip, br"))
    )
    assert compare_responses(json_response({"a": 1}), both, noise=["header.content-encoding"]) == []


def test_multi_member_gzip() -> None:
    body = gzip.compress(b'{"a": ') + gzip.compress(b"1}")
    r = response(body, (*JSON_CT, ("Content-Encoding", "gzip")))
    assert compare_responses(json_response({"a": 1}), r, noise=["header.Content-Encoding"]) == []


def test_broken_encoding_compares_raw_bytes() -> None:
    headers = (*JSON_CT, ("Content-Encoding", "gzip"))
    e, a = response(b"not gzip", headers), response(b"not gzip either", headers)
    [diff] = compare_responses(e, a)
    assert diff.path == "body" and str(diff.expected).startswith("8 bytes sha256:")
    assert compare_responses(e, response(b"not gzip", headers)) == []
    unknown = (*JSON_CT, ("Content-Encoding", "zstd"))
    assert compare_responses(response(b"\x01", unknown), response(b"\x01", unknown)) == []


# --- properties ------------------------------------------------------------------------

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=25,
)


def nodes(value: object, path: Concrete = ("body",)) -> Iterator[tuple[Concrete, object]]:
    yield path, value
    if isinstance(value, dict):
        for key, child in value.items():
            yield from nodes(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from nodes(child, (*path, index))


def replaced(value: object, path: Concrete, new: object) -> object:
    if len(path) == 1:
        return new
    copy = json.loads(json.dumps(value))
    parent = copy
    for step in path[1:-1]:
        parent = parent[step]
    parent[path[-1]] = new
    return copy


def names(diffs: list[Difference], location: Concrete) -> bool:
    """Whether some difference is at ``location`` or beneath it."""
    text = format_path(location)
    return any(d.path == text or d.path.startswith((text + ".", text + "[")) for d in diffs)


def canonical(value: object) -> object:
    """JSON equality as wiretape defines it: 1 == 1.0, but true != 1."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return (type(value).__name__, value)
    if isinstance(value, float) and value.is_integer():
        return ("num", int(value))
    if isinstance(value, int | float):
        return ("num", value)
    if isinstance(value, list):
        return ("list", tuple(canonical(v) for v in value))
    assert isinstance(value, dict)
    return ("dict", tuple(sorted((k, canonical(v)) for k, v in value.items())))


def changed_leaf(leaf: object) -> object:
    if isinstance(leaf, bool):
        return not leaf
    if isinstance(leaf, int):
        return leaf + 1
    if isinstance(leaf, float):
        return leaf + 1.0 if leaf + 1.0 != leaf else -leaf - 1.0
    if isinstance(leaf, str):
        return leaf + "!"
    return 0


@given(json_values)
def test_compare_with_itself_is_empty(value: object) -> None:
    compact = response(json.dumps(value, separators=(",", ":")).encode(), JSON_CT)
    pretty = response(json.dumps(value, indent=2, sort_keys=True).encode(), JSON_CT)
    assert compare_responses(compact, compact) == []
    assert compare_responses(compact, pretty) == []


@given(json_values, st.data())
def test_changed_leaf_is_named(value: object, data: st.DataObject) -> None:
    leaves = [(p, v) for p, v in nodes(value) if not isinstance(v, dict | list)]
    if not leaves:
        return
    path, leaf = data.draw(st.sampled_from(leaves))
    mutated = replaced(value, path, changed_leaf(leaf))
    diffs = compare_responses(json_response(value), json_response(mutated))
    assert diffs and names(diffs, path)
    assert (
        compare_responses(json_response(value), json_response(mutated), noise=[format_path(path)])
        == []
    )


@given(json_values, st.data())
def test_key_mutations_are_named(value: object, data: st.DataObject) -> None:
    objects = [(p, v) for p, v in nodes(value) if isinstance(v, dict)]
    if not objects:
        return
    path, obj = data.draw(st.sampled_from(objects))
    assert isinstance(obj, dict)
    new_key = "\x00new" + "".join(obj)  # not a key of obj
    mutation = data.draw(st.sampled_from(["rename", "drop", "add"]))
    if mutation == "add":
        mutated = replaced(value, path, {**obj, new_key: 1})
        location: Concrete = (*path, new_key)
    else:
        if not obj:
            return
        key = data.draw(st.sampled_from(sorted(obj)))
        rest = {k: v for k, v in obj.items() if k != key}
        mutated = replaced(
            value, path, {**rest, new_key: obj[key]} if mutation == "rename" else rest
        )
        location = (*path, key)
    diffs = compare_responses(json_response(value), json_response(mutated))
    assert names(diffs, location)


@given(json_values, st.data())
def test_reordered_list_is_named(value: object, data: st.DataObject) -> None:
    lists = [
        (p, v)
        for p, v in nodes(value)
        if isinstance(v, list) and len({canonical(x) for x in v}) > 1
    ]
    if not lists:
        return
    path, items = data.draw(st.sampled_from(lists))
    assert isinstance(items, list)
    diffs = compare_responses(
        json_response(value), json_response(replaced(value, path, items[::-1]))
    )
    if [canonical(x) for x in items] != [canonical(x) for x in items[::-1]]:
        assert names(diffs, path)


@given(
    json_values,
    st.integers(min_value=100, max_value=599),
    st.integers(min_value=100, max_value=599),
)
def test_status_change_is_named(value: object, status: int, other: int) -> None:
    diffs = compare_responses(
        json_response(value, status=status), json_response(value, status=other)
    )
    assert (diffs == []) is (status == other)
    if status != other:
        assert diffs == [Difference("status", "changed", status, other)]
