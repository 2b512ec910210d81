"""Credential headers are replaced by stable placeholders and restored from the secrets file."""

from __future__ import annotations

import stat
from pathlib import Path

from wiretape.compare.diff import compare_responses
from wiretape.model import HttpRequest, HttpResponse
from wiretape.secrets import Secrets, ensure_gitignore, is_placeholder, secrets_path


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
    assert out[2] == ("Cookie", "wiretape:secret:2")
    assert out[3] == ("X-Api-Key", "wiretape:secret:3")
    again = s.redact_headers((("authorization", "Bearer sk_live_123"),))
    assert again == (("authorization", "Bearer wiretape:secret:1"),)
    assert "sk_live_123" not in repr(out)


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
