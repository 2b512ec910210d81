from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from wiretape.errors import StoreError
from wiretape.store import yamlio
from wiretape.store.yamlio import FlowList


def test_dump_keeps_key_order_and_writes_header_pairs_on_one_line() -> None:
    text = yamlio.dump(
        {"format": "wiretape/v1", "b": 1, "headers": [FlowList(["Content-Type", "text/plain"])]}
    )
    assert text == "format: wiretape/v1\nb: 1\nheaders:\n- [Content-Type, text/plain]\n"


def test_flow_style_is_not_registered_globally() -> None:
    assert FlowList not in yaml.SafeDumper.yaml_representers
    with pytest.raises(yaml.representer.RepresenterError):
        yaml.dump({"h": FlowList(["a", "b"])}, Dumper=yaml.SafeDumper)


def test_multiline_strings_are_literal_blocks() -> None:
    text = yamlio.dump({"text": "one\ntwo\n"})
    assert text == "text: |\n  one\n  two\n"


def test_no_anchors_for_shared_objects() -> None:
    shared = {"a": 1}
    text = yamlio.dump({"x": shared, "y": shared})
    assert "&" not in text and "*" not in text


def test_strings_that_look_like_other_types_are_quoted() -> None:
    doc = {"a": "true", "b": "1", "c": "null", "d": "2026-01-01T00:00:00Z", "e": "1.5"}
    assert yamlio.load(yamlio.dump(doc), source="x") == doc


@given(st.text())
def test_any_text_without_surrogates_round_trips(text: str) -> None:
    text = "".join(c for c in text if not 0xD800 <= ord(c) <= 0xDFFF)
    doc = {"v": text, "pair": FlowList([text, text])}
    assert yamlio.load(yamlio.dump(doc), source="x") == doc


def test_dump_of_lone_surrogate_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="surrogate"):
        yamlio.dump({"v": "\ud800"})


def test_load_refuses_python_tags() -> None:
    with pytest.raises(StoreError) as info:
        yamlio.load("a: 1\nb: !!python/object/apply:os.system ['true']\n", source="t.yaml")
    assert "t.yaml:2" in str(info.value)
    assert "hint:" in str(info.value)


def test_load_error_names_file_and_line() -> None:
    with pytest.raises(StoreError, match=r"^set\.yaml:3: not valid YAML"):
        yamlio.load("a: 1\nb: 2\nc: d: e\n", source="set.yaml")
    with pytest.raises(StoreError, match=r"^set\.yaml:4: .*flow sequence \(from line 3\)"):
        yamlio.load("a: 1\nb: 2\nc: [unclosed\n", source="set.yaml")


def test_load_accepts_bytes() -> None:
    assert yamlio.load("k: é\n".encode(), source="x") == {"k": "é"}


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "f.yaml"
    yamlio.atomic_write(target, "one")
    yamlio.atomic_write(target, b"two", fsync=True)
    assert target.read_text() == "two"
    assert os.listdir(tmp_path) == ["f.yaml"]


def test_atomic_write_failure_keeps_old_file_and_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "f.yaml"
    target.write_text("old")

    def fail(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        yamlio.atomic_write(target, "new")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["f.yaml"]


def test_round_trip_reports_unencodable_values_as_value_error() -> None:
    with pytest.raises(ValueError):
        yamlio.round_trip("\udc80")
