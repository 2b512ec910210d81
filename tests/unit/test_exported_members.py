"""Every name a module exports in ``__all__`` exists, and the package imports cleanly."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import wiretape

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(wiretape.__path__, "wiretape.")
    if m.name != "wiretape.__main__"
)


@pytest.mark.parametrize("name", MODULES)
def test_module_imports_and_exports_what_it_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        return
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == []


def test_the_cli_entry_point_exists() -> None:
    from wiretape.cli import main

    assert callable(main)
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
