"""Read test sets from disk, find them by name or age, and rewrite single tests."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from wiretape.model import Mock, SetInfo, TestCase
from wiretape.store import format as fmt
from wiretape.store import journal
from wiretape.store.writer import SESSION_FILE
from wiretape.store.yamlio import TMP_PREFIX, atomic_write, dump, load, store_error

SET_FILE = "set.yaml"


@dataclass(frozen=True)
class TestSet:
    __test__ = False  # not a pytest test class

    path: Path
    info: SetInfo
    tests: tuple[TestCase, ...]
    mocks: Mapping[str, tuple[Mock, ...]]  # per test id, in recorded order
    session: tuple[Mock, ...]


def _read(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise store_error(str(path), f"cannot read: {exc}", "check the file's permissions") from exc
    return load(data, source=str(path))


def _documents(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.suffix == ".yaml" and not p.name.startswith((".", TMP_PREFIX)) and p.is_file()
    )


def _mocks_for(path: Path, set_path: Path, test_id: str | None) -> tuple[Mock, ...]:
    if not path.is_file():
        return ()
    owner, mocks = fmt.doc_to_mocks(_read(path), set_path, source=str(path))
    if owner != test_id:
        expected = "null" if test_id is None else test_id
        raise store_error(
            f"{path}: test",
            f"names {owner!r} but this file belongs to {expected}",
            f"set `test: {expected}`, or rename the file to match",
        )
    return tuple(mocks)


def read_info(path: Path) -> SetInfo:
    """The ``set.yaml`` of the set at ``path``."""
    set_file = path / SET_FILE
    if not set_file.is_file():
        raise store_error(
            str(path),
            f"not a wiretape test set: {SET_FILE} is missing",
            "point at a folder that `wiretape record` wrote",
        )
    return fmt.doc_to_setinfo(_read(set_file), source=str(set_file))


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Loading builds a large graph of young objects that the cyclic collector would rescan
    again and again (superlinear in the size of a mocks file); none of it is cyclic garbage."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextlib.contextmanager
def pinned() -> Iterator[None]:
    """Exempt every object that exists now (a loaded set, its index, the answers the mock
    servers prepared from it) from the cyclic garbage collector until the block ends.

    They live as long as the replay. ``load_set`` pauses the collector, so they are all still
    young afterwards: unpinned, the next collection of the middle generation scans every one of
    them, a pause in the middle of a test during which the mock servers answer nothing, and full
    collections scan them again later (``bench/redis.py``: replay with ``-P 16`` rose from
    0.06–0.20× to 0.28–0.37× of Redis when the set was pinned).
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def load_set(path: Path) -> TestSet:
    """Every test and mock of the set; an interrupted recording (``closed: false``) loads too."""
    with _collector_paused():
        return _load_set(path)


def _load_set(path: Path) -> TestSet:
    info = read_info(path)
    tests: list[TestCase] = []
    for file in _documents(path / "tests"):
        test = fmt.doc_to_test(_read(file), path, source=str(file))
        if test.id != file.stem:
            raise store_error(
                f"{file}: id",
                f"test id {test.id!r} does not match the file name",
                f"rename the file to {test.id}.yaml or set `id: {file.stem}`",
            )
        tests.append(test)
    mocks_dir = path / "mocks"
    mocks = {t.id: _mocks_for(mocks_dir / f"{t.id}.yaml", path, t.id) for t in tests}
    session = _mocks_for(mocks_dir / SESSION_FILE, path, None)
    if (path / journal.JOURNAL_FILE).is_file():
        tests, mocks, session = _merge_journal(path, tests, mocks, session)
    tests.sort(key=lambda t: (t.index, t.id))
    return TestSet(
        path=path,
        info=info,
        tests=tuple(tests),
        mocks=MappingProxyType(mocks),
        session=session,
    )


def _merge_journal(
    path: Path,
    tests: list[TestCase],
    mocks: dict[str, tuple[Mock, ...]],
    session: tuple[Mock, ...],
) -> tuple[list[TestCase], dict[str, tuple[Mock, ...]], tuple[Mock, ...]]:
    """Lay the journal of an unfinished recording over its YAML files.

    A test whose YAML file was written is taken from that file: it was made from the same
    journal record, and may since have gained chains, learned noise or a hand edit, which must
    not be lost. The other tests come from the journal. Every test's mocks come from the journal
    (a mocks file may lack the late ones); session mocks are merged by id.
    """
    by_id = {t.id: t for t in tests}
    journal_mocks: dict[str, list[Mock]] = {}
    session_ids = {m.id for m in session}
    extra_session: list[Mock] = []
    for record, _ in journal.read(path / journal.JOURNAL_FILE, path / "bodies"):
        if record.kind == "test" and record.test is not None:
            by_id.setdefault(record.test.id, record.test)
            journal_mocks[record.test.id] = list(record.mocks)
        elif record.kind == "late" and record.test_id in journal_mocks:
            journal_mocks[record.test_id].extend(record.mocks)
        elif record.kind == "session":
            extra_session.extend(m for m in record.mocks if m.id not in session_ids)
    merged = dict(mocks)
    merged.update((tid, tuple(ms)) for tid, ms in journal_mocks.items())
    return list(by_id.values()), merged, (*session, *extra_session)


def list_sets(root: Path) -> list[Path]:
    """The test sets under ``root``, oldest first by their recorded creation time."""
    if not root.is_dir():
        return []
    found = [
        (read_info(d).created, d.name, d)
        for d in root.iterdir()
        if d.is_dir() and (d / SET_FILE).is_file()
    ]
    return [d for _, _, d in sorted(found)]


def resolve_set(root: Path, name: str | None) -> Path:
    """The set called ``name`` under ``root``, or the newest one when ``name`` is None."""
    if name is not None:
        path = root / name
        if (path / SET_FILE).is_file():
            return path
        known = ", ".join(p.name for p in list_sets(root)) or "none"
        raise store_error(
            str(path),
            f"no test set named {name!r}",
            f"sets under {root}: {known}",
        )
    sets = list_sets(root)
    if not sets:
        raise store_error(
            str(root),
            "no test sets found",
            "record one first with `wiretape record`, or pass the folder that holds them",
        )
    return sets[-1]


def save_test(set_path: Path, test: TestCase) -> None:
    """Rewrite the file of one test, e.g. after learning its noise."""
    fmt.check_test_id(test.id, str(set_path / "tests"))
    doc = fmt.test_to_doc(test, set_path / "bodies")
    atomic_write(set_path / "tests" / f"{test.id}.yaml", dump(doc))
