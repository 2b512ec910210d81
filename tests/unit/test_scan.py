"""``secrets scan`` finds credentials left in a set and says where."""

from __future__ import annotations

import base64
from pathlib import Path

from wiretape.scan import scan_document, scan_set


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
