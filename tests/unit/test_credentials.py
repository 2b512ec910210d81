"""Which key names and value formats count as credentials (shared by redaction and the scan)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wiretape.credentials import (
    FORMAT_MARKERS,
    FORMATS,
    FORMATS_RE,
    KeyRule,
    _trie_pattern,
    format_kinds,
    may_hold_format,
    may_hold_format_bytes,
    split_words,
)

# Credential-shaped strings are assembled at run time so that no whole key sits in the source.
AWS = "AKIA" + "IOSFODNN7" + "EXAMPLE"
GITHUB = "ghp_" + "a1B2" * 9
GITHUB_PAT = "github_pat_" + "11ABCDEFG" + "0" * 13 + "_" + "x" * 59
SLACK = "xoxb-" + "123456789012-abcdefABCDEF"
STRIPE_SECRET = "sk_" + "live_" + "4eC39HqLyjWDarjtT1zdp7dc"
STRIPE_TEST = "sk_" + "test_" + "51Habcdefgh"
STRIPE_RESTRICTED = "rk_" + "live_" + "abcdefgh12345678"
OPENAI = "sk-" + "proj-" + "Ab3_" * 10
OPENAI_LEGACY = "sk-" + "aB3dE6gH9j" * 4 + "kLmNoPqR"
GOOGLE = "AIza" + "SyA-1234567890abcdefghijklmnopqrstu"
GOOGLE_SECRET = "GOCSPX-" + "abcdefghijklmnopqrstuvwxyz12"
PEM = (
    "-----BEGIN "
    + "RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1\nc2VjcmV0\n-----END RSA PRIVATE KEY-----"
)
GCP_PEM = "-----BEGIN " + "PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\n-----END PRIVATE KEY-----\n"


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("access_token", ["access", "token"]),
        ("refreshToken", ["refresh", "token"]),
        ("X-APIKey_2", ["x", "api", "key", "2"]),
        ("HTTPSProxy", ["https", "proxy"]),
        ("PASSWORD", ["password"]),
        ("", []),
    ],
)
def test_names_split_into_lower_case_words(name: str, words: list[str]) -> None:
    assert split_words(name) == words


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "Password",
        "new_password",
        "password_confirmation",
        "passwd",
        "secret",
        "client_secret",
        "clientSecret",
        "aws_secret_access_key",
        "secret_key",
        "token",
        "access_token",
        "refresh_token",
        "refreshToken",
        "id_token",
        "csrf-token",
        "accesstoken",
        "api_key",
        "apiKey",
        "api-key",
        "X-API-Key",
        "APIKEY",
        "apikey",
        "private_key",
        "privateKey",
        "password2",
    ],
)
def test_credential_keys_match_in_any_spelling(key: str) -> None:
    assert KeyRule().matches(key)


@pytest.mark.parametrize(
    "key",
    [
        "token_type",
        "tokenType",
        "tokens_used",
        "max_tokens",
        "prompt_tokens",
        "token_expires_in",
        "secret_name",
        "password_policy",
        "password_required",
        "private_key_id",
        "api_key_name",
        "next_token",
        "NextToken",
        "nextPageToken",
        "page_token",
        "pagetoken",
        "continuation_token",
        "username",
        "key",
        "monkey",
        "secretary",
        "passwordless",
        "tokenizer",
        "",
    ],
)
def test_keys_that_describe_or_page_are_not_credentials(key: str) -> None:
    assert not KeyRule().matches(key)


def test_configured_names_use_the_same_rule() -> None:
    rule = KeyRule(["session_id", "pin"])
    assert rule.matches("sessionId")
    assert rule.matches("X-Session-Id")
    assert rule.matches("card_pin")
    assert not rule.matches("session")
    assert not rule.matches("password")
    assert not rule.matches("pinned")


def test_the_quick_checks_find_every_spelling_of_a_name_and_every_format() -> None:
    rule = KeyRule()
    for text in ('{"apiKey": 1}', "API-KEY=1", '"AccessToken"', "client_secret="):
        assert rule.may_occur(text), text
    assert not rule.may_occur('{"user": "ann", "id": 7}')
    for value in (AWS, GITHUB, GITHUB_PAT, SLACK, STRIPE_RESTRICTED, OPENAI, GOOGLE, PEM):
        assert may_hold_format(f"x {value} y"), value
    assert not may_hold_format('{"user": "ann", "id": 7}')


# Text made of the markers' own pieces, so that near misses and overlaps come up often.
_PIECES = st.sampled_from(
    [*FORMAT_MARKERS, *(m[:-1] for m in FORMAT_MARKERS), *(m[1:] for m in FORMAT_MARKERS)]
)
_TEXT = st.lists(st.one_of(_PIECES, st.text(alphabet="Agx_swPk-. yh", max_size=3))).map("".join)


@given(_TEXT)
def test_the_marker_check_finds_a_marker_exactly_when_one_occurs(text: str) -> None:
    expected = any(marker in text for marker in FORMAT_MARKERS)
    assert may_hold_format(text) is expected
    assert may_hold_format_bytes(text.encode("ascii")) is expected


@given(st.lists(st.text(alphabet="abcp", min_size=1, max_size=4), min_size=1), st.text("abcp"))
def test_a_prefix_factored_pattern_matches_the_same_as_the_plain_alternation(
    words: list[str], text: str
) -> None:
    factored = re.compile(_trie_pattern(words))
    plain = re.compile("|".join(map(re.escape, sorted(set(words), key=len, reverse=True))))
    assert (factored.fullmatch(text) is not None) == (text in words)
    assert (factored.search(text) is not None) == (plain.search(text) is not None)


FORMAT_EXAMPLES = [
    (AWS, "AWS access key id"),
    ("ASIA" + "Y" * 16, "AWS access key id"),
    (GITHUB, "GitHub token"),
    (GITHUB_PAT, "GitHub token"),
    (SLACK, "Slack token"),
    ("xoxp-" + "1" * 12, "Slack token"),
    (STRIPE_SECRET, "Stripe key"),
    (STRIPE_TEST, "Stripe key"),
    (STRIPE_RESTRICTED, "Stripe key"),
    (OPENAI, "OpenAI API key"),
    (OPENAI_LEGACY, "OpenAI API key"),
    (GOOGLE, "Google API key"),
    (GOOGLE_SECRET, "Google OAuth client secret"),
    ("ya29." + "a0AfH6SMB" * 3, "Google OAuth token"),
    (PEM, "private key block"),
    (GCP_PEM, "private key block"),
    ("-----BEGIN " + "OPENSSH PRIVATE KEY-----\nb3Blbn", "private key block"),
    ("sk-" + "ant-api03-" + "x" * 30, "Anthropic API key"),
    ("whsec_" + "A" * 32, "Stripe key"),
]


def test_every_format_has_examples() -> None:
    assert {kind for _, kind in FORMAT_EXAMPLES} == {kind for kind, _ in FORMATS}


@pytest.mark.parametrize(("value", "kind"), FORMAT_EXAMPLES)
def test_known_formats_are_found_alone_and_inside_text(value: str, kind: str) -> None:
    assert list(format_kinds(value)) == [kind]
    assert list(format_kinds(f"the key is {value}, keep it safe")) == [kind]
    assert list(format_kinds(f'{{"k": "{value}"}}')) == [kind]


@pytest.mark.parametrize(
    "text",
    [
        "sk_" + "test_short",  # too short to be a key
        "task_" + "live_abcdefgh12",  # glued to a word
        "AKIA" + "ABCDEFGHIJKLMNO",  # 15 characters
        "AKIA" + "ABCDEFGHIJKLMNOPQ",  # 17 characters
        "ghp_" + "a" * 35,
        "AIza" + "b" * 34,
        "sk-learn-is-a-fine-library-for-everyone",
        "sk-" + "a" * 20,
        "xoxb-123",
        "pk_" + "live_abcdefghijklmnop",  # publishable, not secret
        "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        "wiretape:secret:12",
        "an ordinary sentence about tokens and secrets",
    ],
)
def test_lookalikes_are_not_credentials(text: str) -> None:
    assert list(format_kinds(text)) == []


def test_a_private_key_block_runs_to_its_end_line() -> None:
    text = f"before\n{PEM}\nafter"
    match = FORMATS_RE.search(text)
    assert match is not None and match.group(0) == PEM
