"""``secrets scan`` finds credentials left in a set and says where."""

from __future__ import annotations

import base64
from pathlib import Path

from wiretape.model import HttpRequest, HttpResponse, TestCase
from wiretape.scan import scan_document, scan_set
from wiretape.secrets import Secrets
from wiretape.store import format as fmt


def test_unredacted_credential_headers_are_found_and_placeholders_are_not() -> None:
    doc = {
        "request": {
            "headers": [
                ["Host", "x"],
                ["Authorization", "Bearer abc"],
                ["Cookie", "wiretape:secret:2"],
            ]
        }
    }
    found = scan_document(doc, "tests/0001-x.yaml")
    assert [(f.path, f.kind) for f in found] == [
        ("request.headers[1][Authorization]", "unredacted Authorization header")
    ]


def test_key_formats_anywhere_including_base64_bodies() -> None:
    aws = "AKIA" + "ABCDEFGHIJKLMNOP"
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n"
    doc = {
        "response": {"body": {"text": f"key={aws}"}},
        "request": {"body": {"base64": base64.b64encode(pem.encode()).decode()}},
    }
    kinds = sorted(f.kind for f in scan_document(doc, "f.yaml"))
    assert kinds == ["AWS access key id", "private key block"]


def test_credential_named_json_fields_are_found() -> None:
    doc = {"request": {"body": {"json": {"user": "ann", "password": "hunter2"}}}}
    found = scan_document(doc, "f.yaml")
    assert [f.path for f in found] == ["request.body.json.password"]
    clean = {"request": {"body": {"json": {"user": "ann", "password": "wiretape:secret:1"}}}}
    assert scan_document(clean, "f.yaml") == []


def test_scan_set_reads_yaml_files_and_body_files(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "bodies").mkdir()
    (tmp_path / "tests" / "0001-x.yaml").write_text("format: wiretape/v1\nid: x\n")
    (tmp_path / "bodies" / "ab").write_bytes(b"\x00token ghp_" + b"a" * 36 + b"\xff")
    found = scan_set(tmp_path)
    assert [(f.file, f.kind) for f in found] == [("bodies/ab", "GitHub token")]


STRIPE = "sk_" + "live_" + "4eC39HqLyjWDarjtT1zdp7dc"


def test_keys_are_judged_by_the_rule_redaction_uses() -> None:
    doc = {
        "response": {
            "body": {
                "json": {
                    "token_type": "Bearer",
                    "tokens_used": "12",
                    "next_token": "abc",
                    "refreshToken": "r-1",
                    "client": {"clientSecret": "s-1", "secret_name": "db"},
                    "api_key": ["k-1", ""],
                    "password": 1234,
                }
            }
        }
    }
    found = sorted(f.path for f in scan_document(doc, "f.yaml"))
    assert found == [
        "response.body.json.api_key[0]",
        "response.body.json.client.clientSecret",
        "response.body.json.refreshToken",
    ]


def test_query_parameters_and_form_fields_are_checked() -> None:
    doc = {
        "request": {
            "method": "POST",
            "target": "/oauth?api_key=k-1&page=2&access_token=wiretape:secret:3",
            "headers": [["Content-Type", "application/x-www-form-urlencoded; charset=utf-8"]],
            "body": {"text": "grant_type=password&password=pw&client_secret="},
        },
        "response": {
            "headers": [["Content-Type", "text/plain"]],
            "body": {"text": "password=not-a-form"},
        },
    }
    found = [(f.path, f.kind) for f in scan_document(doc, "f.yaml")]
    assert sorted(found) == [
        ("request.body.text", "value of a 'password' form field"),
        ("request.target", "value of a 'api_key' query parameter"),
    ]


def test_a_value_with_one_format_twice_is_one_finding() -> None:
    doc = {"response": {"body": {"text": f"{STRIPE} and {STRIPE}"}}}
    assert [f.kind for f in scan_document(doc, "f.yaml")] == ["Stripe key"]


def test_a_redacted_recording_scans_clean_and_an_unredacted_one_does_not(tmp_path: Path) -> None:
    req = HttpRequest(
        "POST",
        f"/v1/charges?api_key=k-1&key={STRIPE}",
        (("Authorization", "Bearer t-1"), ("Content-Type", "application/json")),
        b'{"amount": 5, "card": {"password": "pw"}, "note": "' + STRIPE.encode() + b'"}',
    )
    resp = HttpResponse(
        200,
        "OK",
        (("Content-Type", "application/x-www-form-urlencoded"), ("Set-Cookie", "s=1")),
        b"access_token=at-1&token_type=bearer",
    )
    plain = TestCase("0001-post-v1-charges", req, resp)
    s = Secrets()
    redacted = TestCase(plain.id, s.redact_request(req), s.redact_response(resp))
    bodies = tmp_path / "bodies"
    assert scan_document(fmt.test_to_doc(redacted, bodies), "t.yaml") == []
    kinds = sorted({f.kind for f in scan_document(fmt.test_to_doc(plain, bodies), "t.yaml")})
    assert kinds == [
        "Stripe key",
        "unredacted Authorization header",
        "unredacted Set-Cookie header",
        "value of a 'access_token' form field",
        "value of a 'api_key' query parameter",
        "value of a 'password' field",
    ]
