from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import zlib
from pathlib import Path
from typing import Any

import brotli
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wiretape import model
from wiretape.errors import StoreError
from wiretape.store import format as fmt
from wiretape.store import migrate, yamlio

HYPO = settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])

JSON_TYPE = (("Content-Type", "application/json"),)
TEXT_TYPE = (("Content-Type", "text/plain; charset=utf-8"),)


def through_yaml(node: Any) -> Any:
    """The node as a reader gets it back from the file."""
    return yamlio.load(yamlio.dump({"body": node}), source="t.yaml")["body"]


def store(body: model.Body, headers: model.Headers, set_dir: Path) -> tuple[dict[str, Any], bytes]:
    (set_dir / "bodies").mkdir(exist_ok=True)
    node = fmt.encode_body(body, headers, set_dir / "bodies")
    back = fmt.decode_body(through_yaml(node) if node else None, set_dir, "t.yaml: body")
    return node, model.body_bytes(back)


# --- test ids --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "method", "target", "expected"),
    [
        (1, "POST", "/api/orders", "0001-post-api-orders"),
        (7, "GET", "/", "0007-get-root"),
        (7, "GET", "/?q=1", "0007-get-root"),
        (12, "get", "/Users/42/Orders?sort=desc", "0012-get-users-42-orders"),
        (3, "GET", "http://example.test/a_b//c.json", "0003-get-a-b-c-json"),
        (12345, "DELETE", "/x", "12345-delete-x"),
        (2, "OPTIONS", "*", "0002-options-root"),
        (2, "GET", "/caf%C3%A9/ünï", "0002-get-caf-c3-a9-n"),
    ],
)
def test_test_id_for(index: int, method: str, target: str, expected: str) -> None:
    assert fmt.test_id_for(index, method, target) == expected


@given(st.integers(0, 10**6), st.text(max_size=10), st.text(max_size=200))
def test_test_ids_are_valid_file_stems(index: int, method: str, target: str) -> None:
    test_id = fmt.test_id_for(index, method, "/" + target)
    fmt.check_test_id(test_id, "here")
    slug = test_id.split("-", 2)[2]
    assert len(slug) <= 60
    assert "--" not in test_id and not test_id.endswith("-")
    assert int(test_id.split("-", 1)[0]) == index


# --- bodies ----------------------------------------------------------------------------------


def test_empty_body_is_omitted(tmp_path: Path) -> None:
    assert fmt.encode_body(b"", JSON_TYPE, tmp_path) == {}
    assert fmt.decode_body(None, tmp_path, "t.yaml: body") == b""


@pytest.mark.parametrize(
    ("raw", "extra"),
    [
        (b'{"a":1,"b":[true,null,"x"]}', {}),
        (b'{"a": 1, "b": [true, null, "x"]}', {"json_style": "spaced"}),
        (b'{\n  "a": 1,\n  "b": [\n    2\n  ]\n}', {"json_style": "indent2"}),
        ('{"name":"Zoë"}'.encode(), {}),
        (b'{"name":"Zo\\u00eb"}', {"ascii": True}),
        (b'{"name": "Zo\\u00eb"}', {"json_style": "spaced", "ascii": True}),
        (b"[1,2.5,-0.0,1e+16]", {}),
        (b"[]", {}),
    ],
)
def test_json_bodies_are_structured(raw: bytes, extra: dict[str, Any], tmp_path: Path) -> None:
    node, back = store(raw, JSON_TYPE, tmp_path)
    assert back == raw
    assert node == {"json": json.loads(raw), **extra}


def test_json_is_recognised_without_a_content_type(tmp_path: Path) -> None:
    node, _ = store(b' {"a":1}', (), tmp_path)
    assert "text" in node
    node, _ = store(b'{"a":1}', (("Content-Type", "text/plain"),), tmp_path)
    assert node == {"json": {"a": 1}}


def test_json_scalar_needs_a_json_content_type(tmp_path: Path) -> None:
    assert store(b"42", JSON_TYPE, tmp_path)[0] == {"json": 42}
    assert store(b"42", (), tmp_path)[0] == {"text": "42"}
    assert store(b"42", (("content-type", "application/problem+json"),), tmp_path)[0] == {
        "json": 42
    }


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a":1,"a":2}',
        b'{"a":NaN}',
        b"[1e400]",
        b"[1.0E5]",
        b'{"a":1}\n',
        b' {"a":1}',
        b"[1]\r\n",
        b'{"a" : 1}',
        b'["\\ud800"]',
        b"[" + b"9" * 5000 + b"]",
        b"[" * 5000 + b"]" * 5000,
    ],
)
def test_json_that_cannot_be_rebuilt_exactly_falls_back(raw: bytes, tmp_path: Path) -> None:
    node, back = store(raw, JSON_TYPE, tmp_path)
    assert back == raw
    assert "json" not in node


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "two\nlines\n",
        "crlf\r\nline\r\n",
        "nel\x85x",
        "ls\u2028ps\u2029",
        "\ufeffbom",
        "  leading",
        "trailing  \n",
        "tab\there",
        "- item",
        "key: value",
        "#comment",
        "\x07bell",
    ],
)
def test_text_bodies_are_exact(text: str, tmp_path: Path) -> None:
    node, back = store(text.encode(), TEXT_TYPE, tmp_path)
    assert back == text.encode()
    assert node == {"text": text}


def test_nul_and_invalid_utf8_are_binary(tmp_path: Path) -> None:
    assert "base64" in store(b"a\x00b", TEXT_TYPE, tmp_path)[0]
    assert "base64" in store(b"\xff\xfe", TEXT_TYPE, tmp_path)[0]


def test_large_bodies_go_to_files_once(tmp_path: Path) -> None:
    data = bytes(range(256)) * 4
    digest = hashlib.sha256(data).hexdigest()
    node, back = store(data, (), tmp_path)
    assert node == {"file": f"bodies/{digest}", "size": len(data), "sha256": digest}
    assert back == data
    path = tmp_path / "bodies" / digest
    before = path.stat().st_mtime_ns
    store(data, (), tmp_path)
    assert path.stat().st_mtime_ns == before
    assert [p.name for p in (tmp_path / "bodies").iterdir()] == [digest]


def test_binary_up_to_256_bytes_is_inline(tmp_path: Path) -> None:
    assert "base64" in store(b"\xff" * 256, (), tmp_path)[0]
    assert "file" in store(b"\xff" * 257, (), tmp_path)[0]


def test_text_and_json_over_64k_go_to_files(tmp_path: Path) -> None:
    text = b"x" * (64 * 1024)
    assert "text" in store(text, TEXT_TYPE, tmp_path)[0]
    assert "file" in store(text + b"x", TEXT_TYPE, tmp_path)[0]
    big = json.dumps(["y" * 70_000], separators=(",", ":")).encode()
    node, back = store(big, JSON_TYPE, tmp_path)
    assert "file" in node and back == big


def test_file_bodies_decode_as_blob_refs(tmp_path: Path) -> None:
    data = b"\xff" * 1000
    (tmp_path / "bodies").mkdir()
    node = fmt.encode_body(data, (), tmp_path / "bodies")
    ref = fmt.decode_body(node, tmp_path, "t.yaml: body")
    assert isinstance(ref, model.BlobRef)
    assert Path(ref.path).is_absolute() and ref.size == 1000 and ref.read() == data


def test_blob_ref_is_stored_as_file_and_copied_into_the_set(tmp_path: Path) -> None:
    data = b"\x02" * 2000
    digest = hashlib.sha256(data).hexdigest()
    outside = tmp_path / "elsewhere"
    outside.write_bytes(data)
    bodies = tmp_path / "set" / "bodies"
    bodies.mkdir(parents=True)
    ref = model.BlobRef(sha256=digest, size=len(data), path=str(outside))
    node = fmt.encode_body(ref, (("Content-Encoding", "gzip"),), bodies)
    assert node == {"encoding": "gzip", "file": f"bodies/{digest}", "size": 2000, "sha256": digest}
    assert (bodies / digest).read_bytes() == data
    assert [p.name for p in bodies.iterdir()] == [digest]


def test_changed_body_file_is_detected(tmp_path: Path) -> None:
    (tmp_path / "bodies").mkdir()
    node = fmt.encode_body(b"\xfe" * 500, (), tmp_path / "bodies")
    (tmp_path / node["file"]).write_bytes(b"\xfe" * 499 + b"\xfd")
    with pytest.raises(StoreError, match=r"t\.yaml: body.*does not match"):
        fmt.decode_body(node, tmp_path, "t.yaml: body")
    (tmp_path / node["file"]).unlink()
    with pytest.raises(StoreError, match="is missing"):
        fmt.decode_body(node, tmp_path, "t.yaml: body")


def test_body_file_must_be_inside_bodies(tmp_path: Path) -> None:
    digest = "0" * 64
    node = {"file": "../../etc/passwd", "size": 1, "sha256": digest}
    with pytest.raises(StoreError, match="bodies/<sha256>"):
        fmt.decode_body(node, tmp_path, "t.yaml: body")


@pytest.mark.parametrize(
    ("node", "message"),
    [
        ({"text": "a", "base64": "YQ=="}, "exactly one of"),
        ({}, "exactly one of"),
        ({"base64": "not base64!"}, "not valid base64"),
        ({"json": 1, "json_style": "pretty"}, "compact, spaced or indent2"),
        ({"json": 1, "ascii": "yes"}, "true or false"),
        ({"text": 5}, "expected a string"),
        ({"encoding": "gzip", "text": "a"}, "base64 or file"),
        ("just a string", "expected a mapping"),
    ],
)
def test_bad_body_nodes(node: Any, message: str, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=message) as info:
        fmt.decode_body(node, tmp_path, "t.yaml: response.body")
    assert str(info.value).startswith("t.yaml: response.body")
    assert "hint:" in str(info.value)


# --- content-encoding ------------------------------------------------------------------------

PAYLOAD = b'{"id":5,"items":["a","b"]}'


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("coding", "raw"),
    [
        ("gzip", gzip.compress(PAYLOAD)),
        ("deflate", zlib.compress(PAYLOAD)),
        ("deflate", _raw_deflate(PAYLOAD)),
        ("br", brotli.compress(PAYLOAD)),
        ("deflate, gzip", gzip.compress(zlib.compress(PAYLOAD))),
    ],
)
def test_encoded_bodies_keep_raw_bytes_and_a_view(coding: str, raw: bytes, tmp_path: Path) -> None:
    headers = (*JSON_TYPE, ("Content-Encoding", coding))
    node, back = store(raw, headers, tmp_path)
    assert back == raw
    assert node["encoding"] == coding
    assert "base64" in node
    assert node["decoded"] == {"json": json.loads(PAYLOAD)}


def test_encoded_view_is_text_or_absent(tmp_path: Path) -> None:
    headers = (("Content-Encoding", "gzip"),)
    assert store(gzip.compress(b"hello\n"), headers, tmp_path)[0]["decoded"] == {"text": "hello\n"}
    assert "decoded" not in store(gzip.compress(b"\x00\xff"), headers, tmp_path)[0]
    assert "decoded" not in store(b"not gzip at all", headers, tmp_path)[0]
    assert "decoded" not in store(gzip.compress(b"x")[:-4], headers, tmp_path)[0]
    zstd = (("Content-Encoding", "zstd"),)
    node, back = store(b"opaque", zstd, tmp_path)
    assert node == {"encoding": "zstd", "base64": "b3BhcXVl"} and back == b"opaque"


def test_identity_is_not_an_encoding(tmp_path: Path) -> None:
    node, _ = store(b"plain", (("Content-Encoding", "identity"),), tmp_path)
    assert node == {"text": "plain"}


def test_decoded_view_is_bounded(tmp_path: Path) -> None:
    bomb = gzip.compress(b"a" * (256 * 1024 + 1))
    node, back = store(bomb, (("Content-Encoding", "gzip"),), tmp_path)
    assert back == bomb and "decoded" not in node
    fits = gzip.compress(b"a" * (256 * 1024))
    assert "decoded" in store(fits, (("Content-Encoding", "gzip"),), tmp_path)[0]
    brotli_bomb = brotli.compress(b"b" * (10 * 1024 * 1024))
    node, _ = store(brotli_bomb, (("Content-Encoding", "br"),), tmp_path)
    assert "decoded" not in node


# --- properties ------------------------------------------------------------------------------

HEADER_CHOICES = st.sampled_from(
    [
        (),
        JSON_TYPE,
        TEXT_TYPE,
        (("Content-Type", "application/octet-stream"),),
        (("Content-Encoding", "gzip"),),
        (("Content-Encoding", "br"), *JSON_TYPE),
        (("Content-Encoding", "deflate"),),
    ]
)


@HYPO
@given(data=st.binary(max_size=2000), headers=HEADER_CHOICES)
def test_any_bytes_round_trip(data: bytes, headers: model.Headers, tmp_path: Path) -> None:
    assert store(data, headers, tmp_path)[1] == data


@HYPO
@given(text=st.text(max_size=500), headers=HEADER_CHOICES)
def test_any_text_round_trips(text: str, headers: model.Headers, tmp_path: Path) -> None:
    raw = text.encode("utf-8", "surrogatepass")
    node, back = store(raw, headers, tmp_path)
    assert back == raw
    clean = "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)
    if text and clean and not model.header_all(headers, "content-encoding"):
        assert "text" in node or "json" in node


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
STYLES = st.sampled_from(
    [
        {"separators": (",", ":")},
        {"separators": (", ", ": ")},
        {"indent": 2},
    ]
)


@HYPO
@given(value=JSON_VALUES, style=STYLES, ensure_ascii=st.booleans())
def test_any_json_round_trips_and_stays_structured(
    value: Any, style: dict[str, Any], ensure_ascii: bool, tmp_path: Path
) -> None:
    raw = json.dumps(value, ensure_ascii=ensure_ascii, **style).encode("utf-8", "surrogatepass")
    node, back = store(raw, JSON_TYPE, tmp_path)
    assert back == raw
    surrogates = any(0xD800 <= ord(c) <= 0xDFFF for c in json.dumps(value, ensure_ascii=False))
    if not surrogates and len(raw) <= fmt.INLINE_TEXT_MAX:
        assert "json" in node


SAFE_CHARS = st.characters(
    codec="utf-8",
    exclude_characters="\r\x85\u2028\u2029\ufeff\ufffe\uffff",
    exclude_categories=("Cc", "Cs"),
) | st.sampled_from("\t\n ")


@settings(max_examples=400)
@given(
    st.text(SAFE_CHARS, max_size=60) | st.sampled_from(["- a", "? x", "a: b", "#", "|", "!x", "%"])
)
def test_the_yaml_safe_shortcut_is_honest(text: str) -> None:
    if fmt.plainly_yaml_safe(text):
        assert yamlio.round_trip(text) == text
        assert yamlio.round_trip({text: [text]}) == {text: [text]}


@settings(max_examples=200)
@given(JSON_VALUES)
def test_the_yaml_safe_shortcut_is_honest_for_json(value: Any) -> None:
    if fmt.plainly_yaml_safe(value):
        back = yamlio.round_trip(value)
        assert json.dumps(back) == json.dumps(value)


# --- documents -------------------------------------------------------------------------------

TEXT = st.text(st.characters(codec="utf-8"), max_size=20)
HEADERS = st.lists(st.tuples(TEXT, TEXT), max_size=4).map(tuple)
BODIES = st.binary(max_size=400) | st.sampled_from([b"", b'{"a":[1,2]}', b"hello\n"])
TIMES = st.floats(0, 4e9, allow_nan=False)
DURATIONS = st.floats(0, 1e5, allow_nan=False)


@st.composite
def requests(draw: st.DrawFn) -> model.HttpRequest:
    return model.HttpRequest(
        method=draw(st.sampled_from(["GET", "POST", "PATCH"])),
        target=draw(TEXT.map(lambda t: "/" + t)),
        headers=draw(HEADERS),
        body=draw(BODIES),
        version=draw(st.sampled_from(["HTTP/1.1", "HTTP/1.0"])),
        scheme=draw(st.sampled_from(["http", "https"])),
        host=draw(st.sampled_from(["", "api.example.test:8443"])),
        trailers=draw(HEADERS),
    )


@st.composite
def responses(draw: st.DrawFn) -> model.HttpResponse | None:
    if draw(st.booleans()) and draw(st.booleans()):
        return None
    return model.HttpResponse(
        status=draw(st.integers(100, 599)),
        reason=draw(TEXT),
        headers=draw(HEADERS),
        body=draw(BODIES),
        version="HTTP/1.1",
        trailers=draw(HEADERS),
    )


@st.composite
def cases(draw: st.DrawFn) -> model.TestCase:
    return model.TestCase(
        id=fmt.test_id_for(draw(st.integers(1, 99999)), "GET", draw(TEXT.map(lambda t: "/" + t))),
        request=draw(requests()),
        response=draw(responses()),
        error=draw(st.none() | TEXT),
        noise=tuple(draw(st.lists(TEXT, max_size=3))),
        started=draw(TIMES),
        duration=draw(DURATIONS),
        upgraded=draw(st.booleans()),
    )


@st.composite
def mocks(draw: st.DrawFn) -> model.Mock:
    return model.Mock(
        id=draw(TEXT),
        dep=draw(st.sampled_from(["db", "payments", "outbound"])),
        protocol="http",
        request=draw(requests()),
        response=draw(responses()),
        test=None,
        link=draw(st.sampled_from(list(model.LinkKind))),
        candidates=tuple(draw(st.lists(TEXT, max_size=2))),
        error=draw(st.none() | TEXT),
        started=draw(TIMES),
        duration=draw(DURATIONS),
    )


def same_times(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(a)) * 2


@HYPO
@given(test=cases())
def test_tests_round_trip_through_files(test: model.TestCase, tmp_path: Path) -> None:
    (tmp_path / "bodies").mkdir(exist_ok=True)
    text = yamlio.dump(fmt.test_to_doc(test, tmp_path / "bodies"))
    assert text.startswith("format: wiretape/v2\n")
    back = fmt.doc_to_test(yamlio.load(text, source="t.yaml"), tmp_path, source="t.yaml")
    assert abs(back.started - test.started) <= 1e-6
    assert abs(back.duration - test.duration) <= 1e-6
    assert dataclasses.replace(back, started=test.started, duration=test.duration) == test
    again = yamlio.dump(fmt.test_to_doc(back, tmp_path / "bodies"))
    assert again == text


@HYPO
@given(items=st.lists(mocks(), max_size=3), owner=st.none() | st.just("0001-get-x"))
def test_mocks_round_trip_through_files(
    items: list[model.Mock], owner: str | None, tmp_path: Path
) -> None:
    (tmp_path / "bodies").mkdir(exist_ok=True)
    text = yamlio.dump(fmt.mocks_to_doc(owner, items, tmp_path / "bodies"))
    test_id, back = fmt.doc_to_mocks(yamlio.load(text, source="m.yaml"), tmp_path, source="m.yaml")
    assert test_id == owner
    assert len(back) == len(items)
    for got, want in zip(back, items, strict=True):
        assert abs(got.started - want.started) <= 1e-6
        fixed = dataclasses.replace(got, started=want.started, duration=want.duration)
        assert fixed == dataclasses.replace(want, test=owner)


@given(
    name=st.from_regex(r"[a-z0-9_-]{1,20}", fullmatch=True),
    created=TIMES,
    ended=st.none() | TIMES,
    noise=st.lists(TEXT, max_size=3),
)
def test_set_info_round_trips(
    name: str, created: float, ended: float | None, noise: list[str]
) -> None:
    info = model.SetInfo(
        name=name,
        created=created,
        app_command="uvicorn shop.main:app --port 8000",
        deps=(model.DepInfo("db", "postgres", "127.0.0.1:5432"),),
        wiretape_version="0.1.0",
        closed=ended is not None,
        ended=ended,
        noise=tuple(noise),
        extra={"labels": {"team": "shop"}},
    )
    doc = yamlio.load(yamlio.dump(fmt.setinfo_to_doc(info)), source="set.yaml")
    back = fmt.doc_to_setinfo(doc, source="set.yaml")
    assert same_times(back.created, created)
    assert back.ended is None if ended is None else same_times(back.ended or 0, ended)
    assert dataclasses.replace(back, created=created, ended=ended) == info


def test_document_layout_matches_the_format() -> None:
    test = model.TestCase(
        id="0001-post-api-orders",
        request=model.HttpRequest(
            "POST", "/api/orders", (("Content-Type", "application/json"),), b'{"qty":2}'
        ),
        response=None,
        error="connection reset by the app",
        started=1795244400.123456,
        duration=0.0125,
    )
    text = yamlio.dump(fmt.test_to_doc(test, Path("/nonexistent")))
    assert text == (
        "format: wiretape/v2\n"
        "id: 0001-post-api-orders\n"
        "started: '2026-11-21T07:00:00.123456Z'\n"
        "duration_ms: 12.5\n"
        "request:\n"
        "  method: POST\n"
        "  target: /api/orders\n"
        "  version: HTTP/1.1\n"
        "  headers:\n"
        "  - [Content-Type, application/json]\n"
        "  body:\n"
        "    json:\n"
        "      qty: 2\n"
        "response: null\n"
        "error: connection reset by the app\n"
    )


def test_unquoted_yaml_timestamps_are_accepted(tmp_path: Path) -> None:
    text = (
        "format: wiretape/v1\nid: 0002-get-x\nstarted: 2026-11-21T07:00:00.5Z\nduration_ms: 1\n"
        "request: {method: GET, target: /x, version: HTTP/1.1, headers: []}\nresponse: null\n"
    )
    test = fmt.doc_to_test(yamlio.load(text, source="t.yaml"), tmp_path, source="t.yaml")
    assert fmt._iso(test.started) == "2026-11-21T07:00:00.500000Z"
    assert test.duration == 0.001


# --- validation ------------------------------------------------------------------------------

GOOD = {
    "format": "wiretape/v2",
    "id": "0001-get-x",
    "started": "2026-11-21T07:00:00.000000Z",
    "duration_ms": 1.5,
    "request": {"method": "GET", "target": "/x", "version": "HTTP/1.1", "headers": []},
    "response": {"status": 200, "reason": "OK", "version": "HTTP/1.1", "headers": [["A", "b"]]},
}


def _edit(path: list[str | int], value: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(json.dumps(GOOD))
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "where", "message"),
    [
        (["id"], KeyError, "id", "required field is missing"),
        (["id"], "../../etc", "id", "not valid"),
        (["started"], "yesterday", "started", "ISO 8601"),
        (["duration_ms"], "fast", "duration_ms", "expected a number"),
        (["duration_ms"], True, "duration_ms", "expected a number, found a boolean"),
        (["request", "method"], 7, "request.method", "expected a string"),
        (["request", "headers"], [["A"]], r"request.headers\[0\]", "pair of strings"),
        (["response", "status"], "200", "response.status", "HTTP status code"),
        (["response"], KeyError, "response", "missing"),
        (["noise"], ["a", 3], r"noise\[1\]", "expected a string"),
        (["upgraded"], "yes", "upgraded", "true or false"),
        (["request"], [], "request", "expected a mapping"),
    ],
)
def test_invalid_tests_name_file_and_field(
    path: list[str | int], value: Any, where: str, message: str, tmp_path: Path
) -> None:
    with pytest.raises(StoreError, match=rf"^tests/x\.yaml: {where}: .*{message}") as info:
        fmt.doc_to_test(_edit(path, value), tmp_path, source="tests/x.yaml")
    assert "hint:" in str(info.value)


def test_invalid_mock_link(tmp_path: Path) -> None:
    mock = {
        "id": "m1",
        "dep": "db",
        "protocol": "http",
        "link": "psychic",
        "started": "2026-11-21T07:00:00Z",
        "duration_ms": 0,
        "request": GOOD["request"],
        "response": None,
    }
    doc = {"format": "wiretape/v1", "test": None, "mocks": [mock]}
    with pytest.raises(StoreError, match=r"m\.yaml: mocks\[0\]\.link: expected one of lane"):
        fmt.doc_to_mocks(doc, tmp_path, source="m.yaml")
    with pytest.raises(StoreError, match=r"m\.yaml: test: this required field"):
        fmt.doc_to_mocks({"format": "wiretape/v1", "mocks": []}, tmp_path, source="m.yaml")


# --- migrations ------------------------------------------------------------------------------


def test_current_documents_pass_through() -> None:
    doc = {"format": "wiretape/v2", "a": 1}
    assert migrate.migrate(doc, source="x") is doc


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"a": 1}, "`format` key is missing"),
        ({"format": "wiretape/v7"}, "newer wiretape"),
        ({"format": "keploy/v1beta1"}, "unknown format"),
        ({"format": 3}, "unknown format"),
        (["format"], "found a list"),
        (None, "an empty file"),
    ],
)
def test_migrate_errors(doc: Any, message: str) -> None:
    with pytest.raises(StoreError, match=message) as info:
        migrate.migrate(doc, source="tests/0001-get-x.yaml")
    assert str(info.value).startswith("tests/0001-get-x.yaml: ")


def test_migrations_run_step_by_step(monkeypatch: pytest.MonkeyPatch) -> None:
    def convert_0_1(doc: dict[str, Any]) -> dict[str, Any]:
        doc["renamed"] = doc.pop("old")
        return doc

    def convert_m1_0(doc: dict[str, Any]) -> dict[str, Any]:
        doc["old"] = doc.pop("older") * 2
        return doc

    monkeypatch.setitem(migrate.CONVERTERS, "wiretape/v0", ("wiretape/v1", convert_0_1))
    monkeypatch.setitem(migrate.CONVERTERS, "wiretape/v-1", ("wiretape/v0", convert_m1_0))
    out = migrate.migrate({"format": "wiretape/v-1", "older": 21}, source="x")
    assert out == {"format": "wiretape/v2", "renamed": 42}
    assert list(out) == ["format", "renamed"]


def test_doc_readers_migrate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def convert_0_1(doc: dict[str, Any]) -> dict[str, Any]:
        doc["duration_ms"] = doc.pop("duration_s") * 1000
        return doc

    monkeypatch.setitem(migrate.CONVERTERS, "wiretape/v0", ("wiretape/v1", convert_0_1))
    old = {k: v for k, v in GOOD.items() if k != "duration_ms"}
    old.update(format="wiretape/v0", duration_s=2)
    assert fmt.doc_to_test(old, tmp_path, source="t.yaml").duration == 2.0


def test_version_1_documents_load_as_they_are(tmp_path: Path) -> None:
    doc = dict(GOOD, format="wiretape/v1")
    assert migrate.migrate(doc, source="t.yaml") == dict(GOOD, format="wiretape/v2")
    assert fmt.doc_to_test(doc, tmp_path, source="t.yaml") == fmt.doc_to_test(
        dict(GOOD), tmp_path, source="t.yaml"
    )
