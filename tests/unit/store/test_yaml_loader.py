"""The store's YAML loader builds exactly what PyYAML's safe loader builds, or fails as it does."""

from __future__ import annotations

import datetime
import inspect
import math
import sys
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from wiretape.store import yamlio


def reference(text: str) -> Any:
    """PyYAML's safe loader, all of it in Python: no libyaml and no override of ours."""
    return yaml.load(text, Loader=yaml.SafeLoader)


def ours(text: str) -> Any:
    return yaml.load(text, Loader=yamlio.Loader)


def same(a: Any, b: Any) -> bool:
    """Equality that takes NaN as equal to itself and tells 1 from 1.0 and True."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# Strings that YAML 1.1 would read as something else when written plain.
TRICKY = [
    "yes",
    "No",
    "ON",
    "off",
    "~",
    "null",
    "",
    " ",
    "1:20",
    "0x1F",
    "0o17",
    "017",
    "+12",
    "1_000",
    ".inf",
    "-.Inf",
    ".NaN",
    "1e3",
    "2026-11-21",
    "2026-11-21T10:00:00Z",
    "<<",
    "=",
    "- a",
    "a: b",
    "#x",
    "'q'",
    '"d"',
    "multi\nline\n",
    "trailing  \n",
    "tab\there",
    "ü€😀",
    "\x85",
]

scalars = st.one_of(
    st.sampled_from(TRICKY),
    st.text(max_size=20),
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=8), st.sampled_from(TRICKY)), inner, max_size=4),
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(doc=documents, flow=st.sampled_from([None, True, False]))
def test_dumped_documents_load_as_the_safe_loader_loads_them(doc: Any, flow: bool | None) -> None:
    text = yaml.dump(doc, Dumper=yaml.SafeDumper, default_flow_style=flow, allow_unicode=True)
    assert same(ours(text), reference(text))


@settings(max_examples=200, deadline=None)
@given(doc=st.dictionaries(st.text(max_size=8), documents, max_size=5))
def test_documents_the_store_writes_load_as_the_safe_loader_loads_them(
    doc: dict[str, Any],
) -> None:
    try:
        text = yamlio.dump(doc)
    except Exception:
        return  # a value the store refuses to write (a lone surrogate)
    assert same(ours(text), reference(text))


@pytest.mark.parametrize(
    "text",
    [
        "a: &x [1, 2]\nb: *x\n",  # an alias: the same list twice
        "a: &x {k: v}\nb: *x\nc: *x\n",
        "base: &b {x: 1, y: 2}\nmore:\n  <<: *b\n  y: 3\n",  # a merge key
        "=: value\n",
        "when: 2026-11-21 10:00:00\nday: 2026-11-21\n",
        "raw: !!binary aGVsbG8=\n",
        "s: !!set {a, b}\n",
        "o: !!omap [a: 1, b: 2]\n",
        "p: !!pairs [a: 1, a: 2]\n",
        "n: !!str 123\ni: !!int '5'\nf: !!float '1'\n",
        "i: [1:20, 0x1F, 0o17, 017, +12, 1_000, -0b101]\n",
        "f: [.inf, -.Inf, .NaN, 1e3, 6.8523015e+5, 685_230.15, 190:20:30.15]\n",
        "b: [yes, No, on, OFF, true, False, y, n]\n",
        "z: [~, null, Null, '']\nempty:\n",
        "dup: 1\ndup: 2\n",
        "? [a, b]\n: unhashable\n",
        "? {a: b}\n: unhashable\n",
        "- !!python/name:os.system\n",
        "x: !custom 1\n",
        "[" * 300 + "]" * 300,
        "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 150)) + "  " * 150 + "end\n",
    ],
)
def test_documents_beyond_the_plain_ones_load_or_fail_as_with_the_safe_loader(text: str) -> None:
    try:
        expected = reference(text)
    except (yaml.YAMLError, RecursionError) as exc:
        with pytest.raises(type(exc)):
            ours(text)
        return
    got = ours(text)
    assert same(got, expected) or (
        # Sets and timestamps are not plain: they come from the safe constructor itself.
        isinstance(expected, dict) and got == expected
    )


def test_an_alias_loads_as_one_shared_object_as_with_the_safe_loader() -> None:
    got = ours("a: &x [1, 2]\nb: *x\n")
    assert got["a"] is got["b"]


def test_timestamps_still_load_as_datetimes() -> None:
    assert ours("d: 2026-11-21\n") == {"d": datetime.date(2026, 11, 21)}


def test_nesting_too_deep_for_the_plain_builder_is_left_to_pyyaml() -> None:
    depth = 200
    text = "".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "end\n"
    expected = reference(text)
    limit = sys.getrecursionlimit()
    # Room for the parser and PyYAML's constructor, which does not recurse per level, but not
    # for a builder that does.
    sys.setrecursionlimit(len(inspect.stack()) + depth)
    try:
        got = ours(text)
    finally:
        sys.setrecursionlimit(limit)
    assert got == expected
