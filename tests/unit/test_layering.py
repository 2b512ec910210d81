"""The dependency direction between packages is part of the design; this keeps it true."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "wiretape"

IO_MODULES = {
    "asyncio",
    "socket",
    "ssl",
    "selectors",
    "subprocess",
    "threading",
    "yaml",
    "http",
    "urllib.request",
    "uvloop",
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py"))


def hits(found: set[str], banned: set[str]) -> list[str]:
    return sorted(m for m in found for b in banned if m == b or m.startswith(b + "."))


@pytest.mark.parametrize("path", modules("protocols"), ids=lambda p: p.name)
def test_protocols_do_no_io_and_import_no_upper_layer(path: Path) -> None:
    banned = IO_MODULES | {
        "wiretape.proxy",
        "wiretape.runner",
        "wiretape.store",
        "wiretape.cli",
        "wiretape.config",
    }
    assert hits(imports_of(path), banned) == []


@pytest.mark.parametrize("path", modules("compare") + modules("match"), ids=lambda p: p.name)
def test_compare_and_match_do_no_io(path: Path) -> None:
    banned = IO_MODULES | {"wiretape.proxy", "wiretape.runner", "wiretape.store", "wiretape.cli"}
    assert hits(imports_of(path), banned) == []


def test_model_imports_nothing_from_wiretape() -> None:
    found = imports_of(SRC / "model.py")
    assert [m for m in found if m.startswith("wiretape")] == []


def test_the_checker_sees_a_banned_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import asyncio\nfrom wiretape.proxy.server import Listener\n")
    assert hits(imports_of(bad), IO_MODULES | {"wiretape.proxy"}) == [
        "asyncio",
        "wiretape.proxy.server",
    ]
