"""Credentials in headers, bodies and targets get stable placeholders and come back on replay."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import stat
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import brotli
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wiretape.compare.diff import compare_responses
from wiretape.compare.values import matches_redacted
from wiretape.config import load_config
from wiretape.credentials import DEFAULT_HEADERS, DEFAULT_KEYS, KeyRule
from wiretape.errors import ConfigError
from wiretape.match.index import MockIndex
from wiretape.match.keys import http_key
from wiretape.model import (
    BlobRef,
    Headers,
    HttpRequest,
    HttpResponse,
    Miss,
    Mock,
    body_bytes,
    header_get,
)
from wiretape.scan import scan_document
from wiretape.secrets import Secrets, ensure_gitignore, is_placeholder, secrets_path
from wiretape.store.format import encode_body
from wiretape.store.journal import wire_exchange


def test_credentials_get_stable_placeholders_and_schemes_stay_readable(tmp_path: Path) -> None:
    s = Secrets(tmp_path / "s.yaml")
    out = s.redact_headers(
        (
            ("Host", "x"),
            ("Authorization", "Bearer sk_live_123"),
            ("Cookie", "session=abc"),
            ("X-Api-Key", "k-1"),
        )
    )
    assert out[0] == ("Host", "x")
    assert out[1] == ("Authorization", "Bearer wiretape:secret:1")
    assert out[2] == ("Cookie", "session=wiretape:secret:2")
    assert out[3] == ("X-Api-Key", "wiretape:secret:3")
    again = s.redact_headers((("authorization", "Bearer sk_live_123"),))
    assert again == (("authorization", "Bearer wiretape:secret:1"),)
    assert "sk_live_123" not in repr(out)


def test_cookie_values_get_placeholders_and_names_and_attributes_stay() -> None:
    s = Secrets()
    out = s.redact_headers(
        (
            ("Set-Cookie", "sid=s3cr3t-v4lue; Path=/; HttpOnly; Max-Age=3600"),
            ("Cookie", "theme=dark; sid=s3cr3t-v4lue;empty="),
        )
    )
    assert out[0] == ("Set-Cookie", "sid=wiretape:secret:1; Path=/; HttpOnly; Max-Age=3600")
    # The value the response set maps to the same placeholder when a request sends it back.
    assert out[1] == ("Cookie", "theme=wiretape:secret:2; sid=wiretape:secret:1;empty=")
    assert s.reveal_headers(out)[1] == ("Cookie", "theme=dark; sid=s3cr3t-v4lue;empty=")


def test_the_secrets_file_is_private_and_restores_values(tmp_path: Path) -> None:
    path = secrets_path(tmp_path, "demo")
    s = Secrets(path)
    redacted = s.redact_headers((("Authorization", "Basic dXNlcjpwdw=="),))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    reloaded = Secrets(path)
    assert reloaded.reveal_headers(redacted) == (("Authorization", "Basic dXNlcjpwdw=="),)
    assert reloaded.missing(redacted) == []
    assert Secrets(tmp_path / "other.yaml").missing(redacted) == ["Authorization"]


def test_gitignore_keeps_runs_and_secrets_out(tmp_path: Path) -> None:
    ensure_gitignore(tmp_path)
    ensure_gitignore(tmp_path)
    assert (tmp_path / ".gitignore").read_text().splitlines() == [".runs/", ".secrets/"]


def test_requests_keep_identity_when_nothing_is_secret() -> None:
    req = HttpRequest("GET", "/", (("Host", "x"),))
    assert Secrets().redact_request(req) is req
    assert not is_placeholder("Bearer abc")


def test_a_redacted_response_header_matches_any_live_value() -> None:
    expected = HttpResponse(200, "OK", (("Set-Cookie", "wiretape:secret:4"),), b"")
    live = HttpResponse(200, "OK", (("Set-Cookie", "session=new"),), b"")
    assert compare_responses(expected, live) == []
    gone = HttpResponse(200, "OK", (), b"")
    assert [d.path for d in compare_responses(expected, gone)] == ["header.Set-Cookie"]


# --- bodies, targets and formats ------------------------------------------------------------

JSON = (("Content-Type", "application/json"),)
FORM = (("Content-Type", "application/x-www-form-urlencoded"),)
STRIPE = "sk_" + "test_" + "4eC39HqLyjWDarjtT1zdp7dc"
AWS = "AKIA" + "IOSFODNN7" + "EXAMPLE"
PEM = "-----BEGIN " + "PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\n-----END PRIVATE KEY-----\n"


def post(body: bytes, headers: Headers = JSON, target: str = "/login") -> HttpRequest:
    return HttpRequest("POST", target, (*headers, ("Content-Length", str(len(body)))), body)


def length_of(headers: Headers) -> str | None:
    return header_get(headers, "content-length")


def test_json_credentials_are_redacted_in_place_and_the_rest_keeps_its_bytes() -> None:
    body = (
        b'{"user": "ann", "password": "hunter2", "token_type": "Bearer",\n'
        b' "access_token": "at-1", "expires_in": 3600, "pin": 1234,\n'
        b' "nested": {"apiKey": "k-1", "keys": [1, 2.50, true, null]},\n'
        b' "api_key": ["first", ""], "note": "my key is ' + STRIPE.encode() + b'"}'
    )
    s = Secrets()
    out = s.redact_request(post(body))
    assert isinstance(out.body, bytes)
    assert out.body == (
        b'{"user": "ann", "password": "wiretape:secret:1", "token_type": "Bearer",\n'
        b' "access_token": "wiretape:secret:2", "expires_in": 3600, "pin": 1234,\n'
        b' "nested": {"apiKey": "wiretape:secret:3", "keys": [1, 2.50, true, null]},\n'
        b' "api_key": ["wiretape:secret:4", ""], "note": "my key is wiretape:secret:5"}'
    )
    assert length_of(out.headers) == str(len(out.body))
    assert s.values == {
        "wiretape:secret:1": "hunter2",
        "wiretape:secret:2": "at-1",
        "wiretape:secret:3": "k-1",
        "wiretape:secret:4": "first",
        "wiretape:secret:5": STRIPE,
    }
    assert s.reveal_request(out) == post(body)


def test_escaped_json_strings_are_read_as_json() -> None:
    body = b'{"pass\\u0077ord": "caf\\u00e9 \\"x\\"", "list": ["a\\\\"], "s": "\\u00e9"}'
    s = Secrets()
    out = s.redact_request(post(body))
    assert json.loads(out.body) == {"password": "wiretape:secret:1", "list": ["a\\"], "s": "é"}
    assert s.values["wiretape:secret:1"] == 'café "x"'
    assert json.loads(body_bytes(s.reveal_request(out).body)) == json.loads(body)


def test_a_redacted_json_body_keeps_its_stored_style(tmp_path: Path) -> None:
    doc = {"user": "ann", "password": "hunter2", "items": [{"token": "t", "n": 1}]}
    for body in (json.dumps(doc).encode(), json.dumps(doc, indent=2).encode()):
        out = Secrets().redact_request(post(body))
        before = encode_body(body, JSON, tmp_path)
        after = encode_body(out.body, JSON, tmp_path)
        assert "json" in after and after.get("json_style") == before.get("json_style")
        assert after["json"]["items"][0]["token"] == "wiretape:secret:2"


def test_bodies_that_are_not_json_get_only_the_key_formats_redacted() -> None:
    s = Secrets()
    text = f'password: hunter2\nkey={STRIPE}\n{{"broken": "password"'.encode()
    out = s.redact_request(post(text, (("Content-Type", "text/plain"),)))
    assert out.body == b'password: hunter2\nkey=wiretape:secret:1\n{"broken": "password"'
    pem = s.redact_response(HttpResponse(200, "OK", (), f"-- {PEM}--".encode()))
    assert pem is not None and pem.body == b"-- wiretape:secret:2\n--"
    assert s.values["wiretape:secret:2"] == PEM.rstrip("\n")


def test_form_fields_are_redacted_by_key_and_keep_their_order() -> None:
    body = b"grant_type=client_credentials&client_id=app&client_secret=s%2Bcret%21&token_type=x"
    s = Secrets()
    out = s.redact_request(post(body, FORM))
    assert out.body == (
        b"grant_type=client_credentials&client_id=app&client_secret=wiretape:secret:1&token_type=x"
    )
    assert s.values == {"wiretape:secret:1": "s+cret!"}
    assert s.reveal_request(out).body == body
    assert http_key("dep", s.redact_live(post(body, FORM))) == http_key("dep", out)


def test_query_parameters_are_redacted_by_key_and_format() -> None:
    s = Secrets()
    target = f"/v1/account?api_key=abc%20def&page=2&access_token=&next_token=n1&x={AWS}"
    req = HttpRequest("GET", target, ())
    out = s.redact_request(req)
    assert out.target == (
        "/v1/account?api_key=wiretape:secret:1&page=2&access_token=&next_token=n1"
        "&x=wiretape:secret:2"
    )
    assert s.values == {"wiretape:secret:1": "abc def", "wiretape:secret:2": AWS}
    assert s.reveal_request(out).target == target.replace("%20", "+")
    absolute = s.redact_target("http://api.test/keys/" + STRIPE + "?token=abc")
    assert absolute == "http://api.test/keys/wiretape:secret:3?token=wiretape:secret:4"


def test_key_formats_in_any_header_are_redacted() -> None:
    s = Secrets()
    out = s.redact_headers((("X-Debug", f"used {AWS} today"), ("Accept", "*/*")))
    assert out == (("X-Debug", "used wiretape:secret:1 today"), ("Accept", "*/*"))
    assert s.reveal_headers(out) == (("X-Debug", f"used {AWS} today"), ("Accept", "*/*"))


def test_configured_headers_and_keys_are_redacted_too() -> None:
    s = Secrets(headers={"x-auth-token", *DEFAULT_HEADERS}, keys=("pin", *DEFAULT_KEYS))
    out = s.redact_request(
        HttpRequest("POST", "/", (("X-Auth-Token", "t1"), *JSON), b'{"card_pin": "0000"}')
    )
    assert out.headers[0] == ("X-Auth-Token", "wiretape:secret:1")
    assert out.body == b'{"card_pin": "wiretape:secret:2"}'


def test_the_same_value_gets_the_same_placeholder_everywhere(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    s = Secrets(path)
    resp = s.redact_response(
        HttpResponse(200, "OK", JSON, b'{"access_token": "tok-9", "refresh_token": "r-1"}')
    )
    assert resp is not None and resp.body == (
        b'{"access_token": "wiretape:secret:1", "refresh_token": "wiretape:secret:2"}'
    )
    # The app sends the token on: as a header, in a form and in a JSON body.
    req = s.redact_request(
        HttpRequest(
            "POST",
            "/pay?token=tok-9",
            (("Authorization", "Bearer tok-9"), *JSON),
            b'{"auth": {"token": "tok-9"}}',
        )
    )
    assert req.target == "/pay?token=wiretape:secret:1"
    assert req.headers[0] == ("Authorization", "Bearer wiretape:secret:1")
    assert req.body == b'{"auth": {"token": "wiretape:secret:1"}}'
    # A new table on the same file gives the same placeholders.
    again = Secrets(path).redact_request(post(b'{"token": "r-1"}'))
    assert again.body == b'{"token": "wiretape:secret:2"}'


def test_placeholders_are_never_redacted_again() -> None:
    s = Secrets()
    body = b'{"password": "wiretape:secret:7", "note": "wiretape:secret:8"}'
    req = post(body)
    assert s.redact_request(req) is req
    assert s.values == {}


def test_compressed_bodies_are_decoded_redacted_and_encoded_again() -> None:
    s = Secrets()
    raw = b'{"client_secret": "cs-1", "name": "app"}'
    for coding, compress in (
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("br", brotli.compress),
    ):
        packed = compress(raw)
        headers = (*JSON, ("Content-Encoding", coding), ("Content-Length", str(len(packed))))
        resp = s.redact_response(HttpResponse(200, "OK", headers, packed))
        assert resp is not None and isinstance(resp.body, bytes)
        assert length_of(resp.headers) == str(len(resp.body))
        assert b"cs-1" not in resp.body
        decoded = {"gzip": gzip.decompress, "deflate": zlib.decompress, "br": brotli.decompress}
        redacted = b'{"client_secret": "wiretape:secret:1", "name": "app"}'
        assert decoded[coding](resp.body) == redacted
        served = s.reveal_response(resp)
        assert decoded[coding](body_bytes(served.body)) == raw


def test_a_large_spooled_body_is_redacted_into_a_new_file(tmp_path: Path) -> None:
    data = b'{"items": [' + b'{"n": 1}, ' * 200 + b'{"password": "pw-1"}]}'
    digest = hashlib.sha256(data).hexdigest()
    (tmp_path / digest).write_bytes(data)
    blob = BlobRef(digest, len(data), str(tmp_path / digest))
    s = Secrets()
    out = s.redact_request(HttpRequest("POST", "/", JSON, blob))
    assert isinstance(out.body, BlobRef)
    stored = Path(out.body.path).read_bytes()
    assert b"pw-1" not in stored and stored.endswith(b'{"password": "wiretape:secret:1"}]}')
    assert out.body.sha256 == hashlib.sha256(stored).hexdigest() != digest
    assert not (tmp_path / digest).exists()
    # The same spooled body seen again (concurrent duplicates) gets the same result.
    assert s.redact_request(HttpRequest("POST", "/", JSON, blob)).body == out.body


def _blob(directory: Path, data: bytes) -> BlobRef:
    digest = hashlib.sha256(data).hexdigest()
    (directory / digest).write_bytes(data)
    return BlobRef(digest, len(data), str(directory / digest))


def test_large_compressed_bodies_are_looked_at_piece_by_piece(tmp_path: Path) -> None:
    filler = b'{"n": 1, "text": "lorem ipsum"}, ' * 120_000  # about 4 MiB once inflated
    doc = b'{"items": [' + filler + b'{"refresh_token": "rt-1"}]}'
    raw_deflate = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    for coding, packed in (
        ("gzip", gzip.compress(doc)),
        ("deflate", zlib.compress(doc)),
        ("deflate", raw_deflate.compress(doc) + raw_deflate.flush()),
        ("br", brotli.compress(doc)),
    ):
        headers = (*JSON, ("Content-Encoding", coding))
        s = Secrets()
        out = s.redact_response(HttpResponse(200, "OK", headers, _blob(tmp_path, packed)))
        assert out is not None and isinstance(out.body, BlobRef), coding
        decoded = {"gzip": gzip.decompress, "br": brotli.decompress}.get(coding)
        plain = s.reveal_response(out).body
        assert isinstance(plain, bytes)
        stored = Path(out.body.path).read_bytes()
        if decoded is not None:
            assert decoded(stored).endswith(b'{"refresh_token": "wiretape:secret:1"}]}')
            assert decoded(plain) == doc
        assert s.values == {"wiretape:secret:1": "rt-1"}, coding


def test_large_bodies_without_credentials_or_of_binary_types_are_kept(tmp_path: Path) -> None:
    s = Secrets()
    clean = _blob(tmp_path, b'{"items": [' + b'{"n": 1}, ' * 200_000 + b"2]}")
    resp = HttpResponse(200, "OK", JSON, clean)
    assert s.redact_response(resp) is resp
    assert s.reveal_response(resp) is resp
    binary = _blob(tmp_path, b"\x00" * 2_000_000 + AWS.encode())
    octets = HttpResponse(200, "OK", (("Content-Type", "application/octet-stream"),), binary)
    assert s.redact_response(octets) is octets
    assert s.values == {}


# --- replaying -------------------------------------------------------------------------------


def test_live_requests_match_their_recording_and_unknown_values_miss(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    recorded = Secrets(path).redact_request(post(b'{"user": "ann", "password": "pw-1"}'))
    before = path.read_bytes()
    replay = Secrets(path)
    same = replay.redact_live(post(b'{"password":"pw-1","user":"ann"}'))
    assert http_key("dep", same) == http_key("dep", recorded)
    other = replay.redact_live(post(b'{"user": "ann", "password": "pw-2"}'))
    assert json.loads(other.body)["password"] == "wiretape:secret:unknown-1"
    assert http_key("dep", other) != http_key("dep", recorded)
    again = replay.redact_live(post(b'{"user": "ann", "password": "pw-2"}'))
    assert again.body == other.body
    third = replay.redact_live(post(b'{"user": "ann", "password": "pw-3"}'))
    assert json.loads(third.body)["password"] == "wiretape:secret:unknown-2"
    assert path.read_bytes() == before
    assert "pw-2" not in replay.values.values()


def test_a_live_request_is_matched_by_the_index_after_redaction(tmp_path: Path) -> None:
    s = Secrets(tmp_path / "s.yaml")
    recorded = s.redact_request(
        post(b"client_id=a&client_secret=cs-1", FORM, target="/oauth/token?api_key=k-1")
    )
    mock = Mock("m1", "auth", "http", recorded, HttpResponse(200, "OK", ()), test="t1")
    index = MockIndex([], {"t1": [mock]})
    index.begin_test("t1")
    live = post(b"client_id=a&client_secret=cs-1", FORM, target="/oauth/token?api_key=k-1")
    assert isinstance(index.lookup("auth", live), Miss)
    found = index.lookup("auth", Secrets(tmp_path / "s.yaml").redact_live(live))
    assert isinstance(found, Mock) and found.id == "m1"


def test_missing_values_are_named_field_by_field() -> None:
    s = Secrets()
    s.placeholder("known")
    req = HttpRequest(
        "POST",
        "/x/wiretape:secret:5?api_key=wiretape:secret:1&token=wiretape:secret:2",
        (("Authorization", "Bearer wiretape:secret:3"), *JSON),
        b'{"user": {"password": "wiretape:secret:4", "ok": "wiretape:secret:1"}, "l": ["a"]}',
    )
    assert s.missing_fields(req) == [
        "header Authorization",
        "path",
        "query token",
        "body.user.password",
    ]
    form = post(b"a=wiretape:secret:1&client_secret=wiretape:secret:9", FORM)
    assert s.missing_fields(form) == ["form field client_secret"]
    text = post(b"key wiretape:secret:9", (("Content-Type", "text/plain"),))
    assert s.missing_fields(text) == ["body"]
    assert s.missing_fields(post(b'{"password": "wiretape:secret:1"}')) == []


def test_the_secrets_file_is_appended_to_and_reloads_every_value(tmp_path: Path) -> None:
    path = secrets_path(tmp_path, "set")
    s = Secrets(path)
    values = ["a", "multi\nline", PEM, "quote ' \" : # -", "ünïcode", "123", "true", ""]
    placeholders = [s.placeholder(v) for v in values]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    reloaded = Secrets(path)
    assert reloaded.values == dict(zip(placeholders, values, strict=True))
    assert reloaded.placeholder("a") == placeholders[0]
    assert reloaded.placeholder("new") == f"wiretape:secret:{len(values) + 1}"
    assert Secrets(path).values == reloaded.values


# --- comparing -------------------------------------------------------------------------------


def test_redacted_json_fields_in_responses_compare_by_presence() -> None:
    expected = HttpResponse(
        200, "OK", JSON, b'{"access_token": "wiretape:secret:1", "note": "key wiretape:secret:2!"}'
    )

    def diffs(body: bytes) -> list[tuple[str, str]]:
        live = HttpResponse(200, "OK", JSON, body)
        return [(d.path, d.kind) for d in compare_responses(expected, live)]

    assert diffs(b'{"access_token": "live-1", "note": "key sk_live_x!"}') == []
    assert diffs(b'{"access_token": "", "note": "key x!"}') == [("body.access_token", "changed")]
    assert diffs(b'{"note": "key x!"}') == [("body.access_token", "missing")]
    assert diffs(b'{"access_token": 5, "note": "key x!"}') == [("body.access_token", "type")]
    assert diffs(b'{"access_token": "a", "note": "key !"}') == [("body.note", "changed")]
    assert diffs(b'{"access_token": "a", "note": "lock x!"}') == [("body.note", "changed")]


def test_redacted_text_bodies_compare_by_presence() -> None:
    text = (("Content-Type", "text/plain"),)
    expected = HttpResponse(200, "OK", text, b"key=wiretape:secret:1\nuser=ann\n")
    same = HttpResponse(200, "OK", text, b"key=" + STRIPE.encode() + b"\nuser=ann\n")
    changed = HttpResponse(200, "OK", text, b"key=abc\nuser=bob\n")
    assert compare_responses(expected, same) == []
    assert [d.path for d in compare_responses(expected, changed)] == ["body"]


@pytest.mark.parametrize(
    ("expected", "actual", "equal"),
    [
        ("wiretape:secret:1", "x", True),
        ("wiretape:secret:1", "", False),
        ("a wiretape:secret:1 b wiretape:secret:2 c", "a 1 b 2 c", True),
        ("a wiretape:secret:1 b wiretape:secret:2 c", "a 1 b  c", False),
        ("wiretape:secret:1wiretape:secret:2", "xy", True),
        ("wiretape:secret:1wiretape:secret:2", "x", False),
        ("ab wiretape:secret:1 ab", "ab ab", False),
        ("plain", "plain", False),
    ],
)
def test_matches_redacted(expected: str, actual: str, equal: bool) -> None:
    assert matches_redacted(expected, actual) is equal


_TEXT = st.text(alphabet="ab :", max_size=6)


@given(st.lists(_TEXT, min_size=2, max_size=4), st.text(alphabet="ab :x", max_size=12))
def test_matches_redacted_agrees_with_a_regular_expression(pieces: list[str], actual: str) -> None:
    expected = "".join(
        piece + (f"wiretape:secret:{i}" if i < len(pieces) - 1 else "")
        for i, piece in enumerate(pieces)
    )
    pattern = "(?s:.+?)".join(map(re.escape, pieces))
    assert matches_redacted(expected, actual) is (re.fullmatch(pattern, actual) is not None)


# --- properties ------------------------------------------------------------------------------

_KEYS = st.sampled_from(
    ["id", "user", "password", "token_type", "access_token", "apiKey", "notes", "secret", "é"]
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from([STRIPE, AWS, f"key {STRIPE} here", PEM])
)
_JSON_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)


def _strings_under_credential_keys(value: object, key: str | None = None) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _strings_under_credential_keys(v, k)
    elif isinstance(value, list):
        for item in value:
            yield from _strings_under_credential_keys(item, key)
    elif isinstance(value, str) and key is not None and KeyRule().matches(key):
        yield value


@settings(max_examples=200, deadline=None)
@given(_JSON_VALUES, st.sampled_from([{}, {"indent": 2}, {"ensure_ascii": False}]))
def test_redact_then_reveal_gives_back_any_json_document(value: object, style: Any) -> None:
    body = json.dumps(value, **style).encode()
    s = Secrets()
    out = s.redact_response(HttpResponse(200, "OK", JSON, body))
    assert out is not None
    redacted = json.loads(out.body)
    # Same structure, nothing credential-like left, and reveal restores the exact bytes.
    assert _shape(redacted) == _shape(value)
    assert scan_document({"response": {"body": {"json": redacted}}}, "f.yaml") == []
    for secret in _strings_under_credential_keys(redacted):
        assert secret == "" or "wiretape:secret:" in secret
    assert s.redact_response(out) == out
    revealed = body_bytes(s.reveal_response(out).body)
    assert json.loads(revealed) == value
    if style.get("ensure_ascii", True):
        assert revealed == body


def _shape(value: object) -> object:
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return type(value).__name__


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(_KEYS, st.text(max_size=10), max_size=5))
def test_redact_then_reveal_gives_back_any_form(fields: dict[str, str]) -> None:
    body = urlencode(fields).encode()
    s = Secrets()
    out = s.redact_request(post(body, FORM))
    pairs = parse_qsl(body_bytes(out.body).decode(), keep_blank_values=True)
    assert [k for k, _ in pairs] == list(fields)
    assert s.reveal_request(out).body == body
    assert s.redact_live(post(body, FORM)).body == out.body


# --- config ----------------------------------------------------------------------------------


def test_the_config_adds_keys_and_headers(tmp_path: Path) -> None:
    path = tmp_path / "wiretape.yaml"
    path.write_text(
        "app: {command: run, port: 8000}\n"
        "secrets:\n  keys: [pin, session_id]\n  headers: [X-Auth-Token]\n"
    )
    cfg = load_config(path)
    assert cfg.secrets.keys == ("pin", "session_id")
    assert "x-auth-token" in cfg.secrets.all_headers and "cookie" in cfg.secrets.all_headers
    assert "password" in cfg.secrets.all_keys and "pin" in cfg.secrets.all_keys
    assert load_config(_write(tmp_path, "")).secrets.all_keys == DEFAULT_KEYS


def _write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "other.yaml"
    path.write_text("app: {command: run, port: 8000}\n" + extra)
    return path


@pytest.mark.parametrize(
    ("extra", "line", "message"),
    [
        ("secrets:\n  key: [pin]\n", 3, "secrets: unknown key 'key'"),
        ("secrets:\n  keys: pin\n", 3, "secrets.keys: expected a list"),
        ("secrets:\n  keys:\n    - ok\n    - 'has space'\n", 5, "secrets.keys[1]: expected a key"),
        ("secrets:\n  keys: [--]\n", 3, "secrets.keys[0]: expected a key"),
        ("secrets:\n  headers: ['X Bad']\n", 3, "secrets.headers[0]: expected an HTTP header"),
        ("secrets: [pin]\n", 2, "secrets: expected a mapping"),
    ],
)
def test_bad_secrets_config_is_reported_with_its_line(
    tmp_path: Path, extra: str, line: int, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, extra))
    assert info.value.line == line
    assert info.value.message.startswith(message), info.value.message


# --- the raw-bytes check that lets a recording skip redaction ---------------------------------

_NAMES = ["Accept", "X-Trace", "Content-Type", "AUTHORIZATION", "cookie", "Set-Cookie", "X-Api-Key",
          "Content-Encoding", "X-Token-Hint", "Proxy-Authorization"]  # fmt: skip
_WORDS = ["ada", "pass", "word", "password", "api", "key", "token", "Secret", "next", "PRIVATE KEY",
          "PRIVATE+KEY", "ghp_" + "b" * 36, "AKIA" + "C" * 16, "sk_live_" + "d" * 24, "%70ass",
          "\\u0070", "é", "+", " ", "=", "&", '"', ":", "{", "}", "1"]  # fmt: skip
_TYPES = ["application/json", "application/x-www-form-urlencoded", "text/plain", ""]
_word_text = st.lists(st.sampled_from(_WORDS), max_size=8).map("".join)


@st.composite
def _exchange(draw: st.DrawFn) -> tuple[HttpRequest, HttpResponse]:
    def headers() -> tuple[tuple[str, str], ...]:
        pairs = draw(st.lists(st.tuples(st.sampled_from(_NAMES), _word_text), max_size=3))
        ctype = draw(st.sampled_from(_TYPES))
        return tuple(pairs) + ((("Content-Type", ctype),) if ctype else ())

    def body() -> bytes:
        if draw(st.booleans()):
            key, value = draw(_word_text), draw(_word_text)
            return json.dumps({key: value, "n": 1}, ensure_ascii=False).encode()
        return draw(_word_text).encode()

    target = "/p/" + draw(_word_text).replace(" ", "_")
    if draw(st.booleans()):
        target += "?" + draw(_word_text).replace(" ", "+")
    req = HttpRequest("POST", target, headers(), body())
    resp = HttpResponse(200, "OK", headers(), body())
    return req, resp


def _raw(start: str, headers: tuple[tuple[str, str], ...], body: bytes) -> bytes:
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return f"{start}\r\n{lines}Content-Length: {len(body)}\r\n\r\n".encode() + body


def _clean(secrets: Secrets, request: bytes, response: bytes) -> bool:
    """``wire_is_clean`` for two whole messages, given as the proxy gives them."""
    req, resp = wire_exchange(request, response)
    assert isinstance(req.body, bytes) and isinstance(resp.body, bytes)
    return secrets.wire_is_clean(
        (request, response), (req.headers, resp.headers), req.target, (req.body, resp.body)
    )


@settings(max_examples=400, deadline=None)
@given(_exchange())
def test_an_exchange_called_clean_is_one_redaction_leaves_alone(
    exchange: tuple[HttpRequest, HttpResponse],
) -> None:
    req, resp = exchange
    assert isinstance(req.body, bytes) and isinstance(resp.body, bytes)
    secrets = Secrets()
    request = _raw(f"POST {req.target} HTTP/1.1", req.headers, req.body)
    response = _raw("HTTP/1.1 200 OK", resp.headers, resp.body)
    req, resp = wire_exchange(request, response)  # with the Content-Length header
    if _clean(secrets, request, response):
        assert secrets.redact_request(req) is req
        assert secrets.redact_response(resp) is resp
        assert not secrets.values  # and nothing got a placeholder


def test_the_clean_check_passes_plain_exchanges_and_stops_at_each_kind_of_credential() -> None:
    secrets = Secrets()
    get = _raw("GET /a?page=2 HTTP/1.1", (("Host", "app"),), b"")

    def ok(body: bytes, *headers: tuple[str, str]) -> bytes:
        return _raw("HTTP/1.1 200 OK", (("Content-Type", "application/json"), *headers), body)

    assert _clean(secrets, get, ok(b'{"name":"ada"}'))
    dirty = [
        (get.replace(b"Host", b"authorization"), ok(b"{}")),
        (get, ok(b"{}", ("Set-Cookie", "a=b"))),
        (get, ok(b"{}", ("Content-Encoding", "identity"))),
        (get.replace(b"page=2", b"page=2&api_key=x"), ok(b"{}")),
        (get, ok(b'{"password":"x"}')),
        (get, ok(b'{"p\\u0061ss":"x"}')),
        (get, ok(b"pass%77ord=x")),
        (get, ok(b"k=AKIA" + b"A" * 16)),
        (get, ok(b"k=-----BEGIN+PRIVATE+KEY")),
        (get, ok("\u00e9".encode())),
        (get.replace(b"Host: app", b"X-K: ghp_" + b"c" * 36), ok(b"{}")),
    ]
    for request, response in dirty:
        assert not _clean(secrets, request, response), (request, response)
    custom = Secrets(headers=["X-Session"], keys=["pin"])
    assert not _clean(custom, get.replace(b"Host", b"x-session"), ok(b""))
    assert not _clean(custom, get, ok(b'{"pin":1}'))
    pem = b"k=-----BEGIN+PRIVATE+KEY-----+x"  # a form body: "+" reads as a space
    form = HttpRequest("POST", "/", (("Content-Type", "application/x-www-form-urlencoded"),), pem)
    assert custom.redact_request(form) is not form
    assert not _clean(custom, _raw("POST / HTTP/1.1", form.headers, pem), ok(b""))
