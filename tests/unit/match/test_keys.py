from __future__ import annotations

import gzip
import hashlib
import json
import random
import zlib
from pathlib import Path
from urllib.parse import urlencode

import brotli
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wiretape.match import keys
from wiretape.match.keys import body_view, describe, http_key, normalize_path
from wiretape.model import BlobRef, Body, Headers, HttpRequest

JSON_CT: Headers = (("Content-Type", "application/json"),)
FORM_CT: Headers = (("Content-Type", "application/x-www-form-urlencoded"),)


def req(
    target: str = "/",
    *,
    method: str = "GET",
    headers: Headers = (),
    body: Body = b"",
    scheme: str = "http",
    host: str = "",
) -> HttpRequest:
    return HttpRequest(
        method=method, target=target, headers=headers, body=body, scheme=scheme, host=host
    )


def key(r: HttpRequest, dep: str = "api") -> keys.HttpKey:
    return http_key(dep, r)


# --- method, scheme, host -------------------------------------------------------------------


def test_method_is_upper_cased_and_scheme_lower_cased() -> None:
    k = key(req(method="post", scheme="HTTPS"))
    assert (k.method, k.scheme) == ("POST", "https")
    assert key(req(method="post")) == key(req(method="POST"))


def test_different_methods_differ() -> None:
    assert key(req(method="GET")) != key(req(method="DELETE"))


def test_dep_is_part_of_the_key() -> None:
    assert key(req(), "a") != key(req(), "b")


@pytest.mark.parametrize(
    ("scheme", "host", "expected"),
    [
        ("http", "API.Example.COM:80", "api.example.com"),
        ("https", "api.example.com:443", "api.example.com"),
        ("http", "api.example.com:443", "api.example.com:443"),
        ("https", "api.example.com:80", "api.example.com:80"),
        ("http", "api.example.com:8080", "api.example.com:8080"),
        ("http", "[::1]:80", "[::1]"),
        ("http", "", ""),
    ],
)
def test_host_is_lower_cased_without_default_port(scheme: str, host: str, expected: str) -> None:
    assert key(req(scheme=scheme, host=host)).host == expected


def test_named_dep_has_empty_host() -> None:
    assert key(req("/v1/x")).host == ""


# --- path -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/a%7Eb", "/a~b"),
        ("/%41%62c-%2E_", "/Abc-._"),
        ("/a%2fb", "/a%2Fb"),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/a%20b", "/a%20b"),
        ("/plain", "/plain"),
        ("/bad%zz%4", "/bad%zz%4"),
        ("", "/"),
    ],
)
def test_path_percent_encoding_is_normalized(raw: str, expected: str) -> None:
    assert normalize_path(raw) == expected


def test_path_escape_of_reserved_char_is_not_the_char() -> None:
    assert key(req("/a%2Fb")) == key(req("/a%2fb"))
    assert key(req("/a%2Fb")) != key(req("/a/b"))


def test_absolute_target_through_a_proxy_uses_its_path() -> None:
    k = key(req("http://api.example.com/v1/x?b=2&a=1", host="api.example.com"))
    assert k.path == "/v1/x"
    assert k.query == (("a", "1"), ("b", "2"))


def test_path_case_matters() -> None:
    assert key(req("/Users")) != key(req("/users"))


# --- query ----------------------------------------------------------------------------------


def test_query_order_does_not_matter() -> None:
    assert key(req("/r?base=EUR&limit=10")) == key(req("/r?limit=10&base=EUR"))


def test_query_blank_values_are_kept() -> None:
    assert key(req("/r?a=&b")).query == (("a", ""), ("b", ""))
    assert key(req("/r?a=")) != key(req("/r"))


def test_query_escapes_are_decoded() -> None:
    assert key(req("/r?q=a%20b")) == key(req("/r?q=a+b"))


def test_query_repeated_names_keep_all_values() -> None:
    assert key(req("/r?t=1&t=2")) == key(req("/r?t=2&t=1"))
    assert key(req("/r?t=1&t=2")) != key(req("/r?t=1"))


def test_query_values_differ() -> None:
    assert key(req("/r?base=EUR")) != key(req("/r?base=USD"))


@given(st.lists(st.tuples(st.text(min_size=1), st.text()), max_size=6), st.randoms())
def test_query_key_is_invariant_under_permutation(
    pairs: list[tuple[str, str]], rnd: random.Random
) -> None:
    shuffled = list(pairs)
    rnd.shuffle(shuffled)
    assert key(req("/r?" + urlencode(pairs))) == key(req("/r?" + urlencode(shuffled)))


# --- body -----------------------------------------------------------------------------------


def test_json_key_order_and_whitespace_do_not_matter() -> None:
    a = req(method="POST", headers=JSON_CT, body=b'{"b": 1, "a": [1, 2, {"y": 1, "x": 2}]}')
    b = req(method="POST", headers=JSON_CT, body=b'{"a":[1,2,{"x":2,"y":1}],\n "b":1}')
    assert key(a) == key(b)
    assert key(a).body == 'json:{"a":[1,2,{"x":2,"y":1}],"b":1}'


def test_json_values_differ() -> None:
    a = req(headers=JSON_CT, body=b'{"amount": 10}')
    b = req(headers=JSON_CT, body=b'{"amount": 12}')
    assert key(a) != key(b)


def test_json_array_order_matters() -> None:
    assert key(req(headers=JSON_CT, body=b"[1,2]")) != key(req(headers=JSON_CT, body=b"[2,1]"))


def test_json_keeps_non_ascii_text() -> None:
    assert key(req(headers=JSON_CT, body='{"n": "café"}'.encode())).body == 'json:{"n":"café"}'


def test_json_escaped_and_literal_text_are_equal() -> None:
    a = req(headers=JSON_CT, body=b'{"n": "caf\\u00e9"}')
    b = req(headers=JSON_CT, body='{"n": "café"}'.encode())
    assert key(a) == key(b)


@pytest.mark.parametrize(
    "ctype", ["application/json", "application/vnd.api+json", "application/json; charset=utf-8"]
)
def test_json_content_types(ctype: str) -> None:
    r = req(headers=(("content-type", ctype),), body=b"  42 ")
    assert key(r).body == "json:42"


def test_json_object_is_detected_without_a_content_type() -> None:
    a = req(body=b'{"b":1, "a":2}')
    b = req(headers=(("Content-Type", "text/plain"),), body=b' {"a":2,"b":1}')
    assert key(a).body == 'json:{"a":2,"b":1}'
    assert key(a) == key(b)


def test_bare_json_scalar_without_json_content_type_is_bytes() -> None:
    assert key(req(body=b"42")).body.startswith("sha256:")


def test_binary_content_type_is_never_sniffed() -> None:
    body = b'{"a": 1}'
    r = req(headers=(("Content-Type", "application/octet-stream"),), body=body)
    assert key(r).body == "sha256:" + hashlib.sha256(body).hexdigest()


def test_invalid_json_with_json_content_type_falls_back_to_sha256() -> None:
    body = b'{"a": '
    assert key(req(headers=JSON_CT, body=body)).body == "sha256:" + hashlib.sha256(body).hexdigest()


def test_json_numbers_keep_their_type() -> None:
    assert key(req(headers=JSON_CT, body=b"[1]")) != key(req(headers=JSON_CT, body=b"[1.0]"))


def test_deeply_nested_json_does_not_crash() -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    assert key(req(headers=JSON_CT, body=body)).body.startswith("sha256:")


@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=6))
def test_json_key_is_invariant_under_key_order(value: dict[str, object]) -> None:
    forward = json.dumps(value).encode()
    backward = json.dumps(dict(reversed(list(value.items()))), indent=2).encode()
    assert key(req(headers=JSON_CT, body=forward)) == key(req(headers=JSON_CT, body=backward))


def test_form_field_order_does_not_matter() -> None:
    a = req(method="POST", headers=FORM_CT, body=b"b=2&a=1&a=0")
    b = req(method="POST", headers=FORM_CT, body=b"a=0&b=2&a=1")
    assert key(a) == key(b)
    assert key(a).body == "form:a=0&a=1&b=2"


def test_form_escapes_are_normalized() -> None:
    a = req(headers=FORM_CT, body=b"q=a%20b&x=%7e")
    b = req(headers=FORM_CT, body=b"x=~&q=a+b")
    assert key(a) == key(b)


def test_form_values_differ() -> None:
    assert key(req(headers=FORM_CT, body=b"a=1")) != key(req(headers=FORM_CT, body=b"a=2"))


def test_empty_body_is_empty() -> None:
    assert key(req(headers=JSON_CT)).body == ""


def test_other_bodies_key_on_sha256() -> None:
    body = b"\x00\x01binary"
    assert key(req(body=body)).body == "sha256:" + hashlib.sha256(body).hexdigest()
    assert key(req(body=body)) != key(req(body=body + b"!"))


def test_headers_are_not_part_of_the_key() -> None:
    a = req(headers=(("X-Request-Id", "1"), ("Accept", "a")))
    b = req(headers=(("X-Request-Id", "2"),))
    assert key(a) == key(b)


# --- stored bodies --------------------------------------------------------------------------


def test_blob_with_binary_type_uses_its_sha256_without_reading() -> None:
    blob = BlobRef(sha256="ab" * 32, size=10, path="/nonexistent/never-read")
    r = req(headers=(("Content-Type", "image/png"),), body=blob)
    assert key(r).body == "sha256:" + "ab" * 32


def test_empty_blob_is_empty() -> None:
    assert key(req(body=BlobRef(sha256="00" * 32, size=0, path="/nonexistent"))).body == ""


def test_blob_with_json_is_read_and_canonicalized(tmp_path: Path) -> None:
    data = b'{"b": 1, "a": 2}'
    path = tmp_path / "blob"
    path.write_bytes(data)
    blob = BlobRef(sha256=hashlib.sha256(data).hexdigest(), size=len(data), path=str(path))
    assert key(req(headers=JSON_CT, body=blob)) == key(req(headers=JSON_CT, body=data))


# --- content encoding -----------------------------------------------------------------------

PAYLOAD = b'{"amount": 10, "currency": "eur"}'


def encoded(coding: str, data: bytes) -> HttpRequest:
    return req(method="POST", headers=(*JSON_CT, ("Content-Encoding", coding)), body=data)


@pytest.mark.parametrize(
    ("coding", "data"),
    [
        ("gzip", gzip.compress(PAYLOAD)),
        ("GZIP", gzip.compress(PAYLOAD, mtime=12345)),
        ("deflate", zlib.compress(PAYLOAD)),
        ("deflate", zlib.compress(PAYLOAD)[2:-4]),
        ("br", brotli.compress(PAYLOAD)),
        ("identity", PAYLOAD),
        ("gzip, br", brotli.compress(gzip.compress(PAYLOAD))),
    ],
)
def test_encoded_bodies_are_decoded(coding: str, data: bytes) -> None:
    plain = req(method="POST", headers=JSON_CT, body=PAYLOAD)
    assert key(encoded(coding, data)) == key(plain)


def test_codings_split_across_headers_apply_in_order() -> None:
    data = brotli.compress(gzip.compress(PAYLOAD))
    r = req(headers=(*JSON_CT, ("Content-Encoding", "gzip"), ("Content-Encoding", "br")), body=data)
    assert key(r).body.startswith("json:")


@pytest.mark.parametrize("coding", ["gzip", "br", "deflate", "zstd"])
def test_undecodable_bodies_key_on_the_bytes_as_sent(coding: str) -> None:
    data = b"not compressed at all"
    assert key(encoded(coding, data)).body == "sha256:" + hashlib.sha256(data).hexdigest()


def test_truncated_gzip_keys_on_the_bytes_as_sent() -> None:
    data = gzip.compress(PAYLOAD)[:-6]
    assert key(encoded("gzip", data)).body == "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("coding", "compress"),
    [("gzip", gzip.compress), ("br", brotli.compress), ("deflate", zlib.compress)],
)
def test_decoding_stops_at_the_size_limit(
    monkeypatch: pytest.MonkeyPatch, coding: str, compress: object
) -> None:
    monkeypatch.setattr(keys, "MAX_DECODED_BODY", 1000)
    data = compress(b"[" + b"0," * 2000 + b"0]")  # type: ignore[operator]
    assert key(encoded(coding, data)).body == "sha256:" + hashlib.sha256(data).hexdigest()


def test_body_view_reports_decoded_size_and_kind() -> None:
    view = body_view(encoded("gzip", gzip.compress(PAYLOAD)))
    assert (view.kind, view.size, view.value) == ("json", len(PAYLOAD), json.loads(PAYLOAD))


# --- describe -------------------------------------------------------------------------------


def test_describe_names_method_and_path() -> None:
    assert describe(req("/v1/charges", method="post")) == "POST /v1/charges"


def test_describe_includes_the_query() -> None:
    assert describe(req("/v1/rates?base=EUR")) == "GET /v1/rates?base=EUR"


def test_describe_names_the_host_for_forward_proxy_requests() -> None:
    r = req("https://API.example.com/v1/x?y=1", scheme="https", host="API.example.com")
    assert describe(r) == "GET https://api.example.com/v1/x?y=1"


def test_describe_is_one_bounded_line() -> None:
    line = describe(req("/a\nb?" + "x" * 1000))
    assert "\n" not in line
    assert len(line) <= 200
