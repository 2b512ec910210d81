"""Credentials in bytes that wiretape does not parse (generic TCP turns).

Known key formats become placeholders padded to the value's length, so the bytes around them
keep their offsets; replay puts the real values back from the table.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from wiretape.credentials import FORMATS_RE
from wiretape.model import BlobRef
from wiretape.secrets import Secrets

AWS = "AKIA" + "IOSFODNN7" + "EXAMPLE"
STRIPE = "sk_" + "live_" + "4eC39HqLyjWDarjtT1zdp7dc"
SLACK = "xoxb-" + "1234567890"  # shorter than its placeholder
PEM = "-----BEGIN " + "PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\n-----END PRIVATE KEY-----"


def holds_format(data: bytes) -> bool:
    return FORMATS_RE.search(data.decode("latin-1")) is not None


def test_a_key_becomes_its_placeholder_padded_to_the_same_length(tmp_path: Path) -> None:
    s = Secrets(tmp_path / "s.yaml")
    data = f"set key 0 0 20\r\n{AWS}\r\n".encode()
    out = s.redact_bytes(data)
    assert out == b"set key 0 0 20\r\nwiretape:secret:1___\r\n"
    assert len(out) == len(data)
    assert s.values == {"wiretape:secret:1": AWS}
    assert AWS in (tmp_path / "s.yaml").read_text()  # the real value goes to the secrets file
    assert s.reveal_bytes(out) == data
    # The same value gets the same placeholder, in any stream.
    assert s.redact_bytes(f"VALUE key 0 20\r\n{AWS}\r\n".encode()).count(b"wiretape:secret:1_") == 1


def test_bytes_without_a_key_come_back_as_they_are() -> None:
    s = Secrets()
    data = bytes(range(256)) * 4 + b"sk-short AKIA1234"
    assert s.redact_bytes(data) is data
    assert s.reveal_bytes(data) is data
    assert s.values == {}


def test_underscores_after_a_value_and_binary_bytes_around_it_are_kept() -> None:
    s = Secrets()
    data = b"\x00\xff\x10" + AWS.encode() + b"__tail\xfe" + STRIPE.encode() + b"_"
    out = s.redact_bytes(data)
    assert not holds_format(out) and len(out) == len(data)
    assert out.startswith(b"\x00\xff\x10wiretape:secret:1___" + b"__tail\xfe")
    assert s.reveal_bytes(out) == data


def test_a_value_shorter_than_its_placeholder_makes_the_bytes_longer() -> None:
    s = Secrets()
    data = f"AUTH {SLACK}\r\n".encode()
    out = s.redact_bytes(data)
    assert out == b"AUTH wiretape:secret:1\r\n"
    assert s.reveal_bytes(out) == data


def test_a_private_key_block_with_line_breaks_is_one_value() -> None:
    s = Secrets()
    data = f"KEY\n{PEM}\nEND\n".encode()
    out = s.redact_bytes(data)
    assert b"PRIVATE KEY" not in out and len(out) == len(data)
    assert s.reveal_bytes(out) == data


def test_live_bytes_name_unknown_values_and_save_nothing(tmp_path: Path) -> None:
    s = Secrets(tmp_path / "s.yaml")
    s.redact_bytes(AWS.encode())
    other = "AKIA" + "Z" * 16
    out = s.redact_live_bytes(f"{AWS} {other}".encode())
    assert out == b"wiretape:secret:1___ wiretape:secret:unknown-1"
    assert list(s.values) == ["wiretape:secret:1"]
    assert other not in (tmp_path / "s.yaml").read_text()


def test_placeholders_the_table_does_not_hold_stay() -> None:
    recorded = Secrets()
    out = recorded.redact_bytes(f"k={AWS}".encode())
    assert Secrets().reveal_bytes(out) == out  # no secrets file: the placeholder is served


def test_a_spooled_file_is_rewritten_only_when_it_holds_a_key(tmp_path: Path) -> None:
    s = Secrets()

    def blob(data: bytes) -> BlobRef:
        digest = hashlib.sha256(data).hexdigest()
        path = tmp_path / digest
        path.write_bytes(data)
        return BlobRef(digest, len(data), str(path))

    clean = blob(b"x" * 3_000_000)
    assert s.redact_blob(clean) is clean
    # The key lies across the boundary of two pieces of the streaming look.
    data = b"y " * ((1 << 19) - 4) + AWS.encode() + b" z" * 50
    held = blob(data)
    new = s.redact_blob(held)
    assert new is not held and not Path(held.path).exists()
    out = Path(new.path).read_bytes()
    assert new.size == len(out) == len(data) and not holds_format(out)
    assert new.sha256 == hashlib.sha256(out).hexdigest()
    assert s.reveal_raw(new) == data
    assert s.reveal_raw(clean) is clean


_FILLER = st.binary(max_size=40).map(lambda b: b.replace(b"wiretape", b"w"))
_KEYS = st.sampled_from([AWS, STRIPE, SLACK, PEM, "ghp_" + "a1B2" * 9, "AIza" + "x" * 35])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_FILLER, _KEYS, st.sampled_from(["", "_", "__", " "])), max_size=5))
def test_redacted_bytes_hold_no_key_and_reveal_gives_them_back(
    parts: list[tuple[bytes, str, str]],
) -> None:
    data = b"".join(filler + key.encode() + after.encode() for filler, key, after in parts)
    s = Secrets()
    out = s.redact_bytes(data)
    assert not holds_format(out)
    assert len(out) >= len(data)
    if all(key != SLACK for _, key, _ in parts):
        assert len(out) == len(data)
    assert s.reveal_bytes(out) == data


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_go_through_both_ways(data: bytes) -> None:
    s = Secrets()
    out = s.redact_bytes(data)
    assert not holds_format(out)
    assert s.reveal_bytes(out) == data or b"wiretape:secret:" in data
