"""Byte-level mutations of valid streams, shared by the codec fuzz tests."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st


@st.composite
def mutated(
    draw: st.DrawFn,
    base: bytes,
    interesting: Sequence[bytes],
    *,
    rounds: int = 4,
    max_delete: int = 8,
    max_duplicate: int = 16,
    truncate: bool = False,
) -> bytes:
    """``base`` with a few bytes flipped, inserted (from ``interesting``), deleted or repeated."""
    ops = ["flip", "insert", "delete", "duplicate", *(["truncate"] if truncate else [])]
    data = bytearray(base)
    for _ in range(draw(st.integers(1, rounds))):
        if not data:
            data += draw(st.sampled_from(interesting))
            continue
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(ops))
        if op == "flip":
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.sampled_from(interesting))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, max_delete))]
        elif op == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, max_duplicate))]
        else:
            del data[at:]
    return bytes(data)
