"""Write a test set while it is being recorded, off the proxy's hot path.

Callers hand finished tests and mocks to ``SetWriter``, which appends each to the set's journal
(``store.journal``) before returning: from then on a kill of the process cannot lose it. A
background thread turns journal records into the YAML files (``tests/``, ``mocks/``) whenever
recording has been idle for a moment, and all of them when the set is closed. It reads the
journal back from disk rather than from a queue, so memory stays flat however long a recording
runs and a burst of traffic never waits for YAML.

Session mocks from a database or TCP proxy may be queued instead (``defer_session_mock``) and
written together by ``flush``, which the recorder schedules once per event-loop pass: a busy
connection then costs one journal write per pass rather than one per exchange. Queued records
reach the journal before any other record and before ``close``.

Session mocks are kept as YAML documents in memory and ``mocks/_session.yaml`` is rewritten once
per batch of records.

Large bodies never pass through memory whole: a ``BodySpool`` spills to ``bodies/.tmp-*`` past
1 MiB, hashing as it writes, and is renamed to ``bodies/<sha256>`` when finished.
"""

from __future__ import annotations

import dataclasses
import hashlib
import heapq
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from wiretape import __version__
from wiretape.chains import Detector
from wiretape.errors import StoreError
from wiretape.model import BlobRef, Body, Mock, SetInfo, TestCase
from wiretape.store import format as fmt
from wiretape.store import journal
from wiretape.store.yamlio import (
    TMP_PREFIX,
    atomic_write,
    atomic_write_parts,
    dump,
    load,
    store_error,
)

SPOOL_THRESHOLD = 1 << 20
SESSION_FILE = "_session.yaml"

_SPACE_HINT = "check free disk space and permissions on the test set folder"

IDLE_SECONDS = 0.05  # quiet time before the background thread writes YAML

# Tests reach the journal as they finish, which with --concurrent is not always the order they
# began in. Chains are found in the order tests began, so a test that finished early waits for
# those begun before it, up to this many tests; past that (a test that never finished) the
# earliest waiting one goes on.
CHAIN_WINDOW = 256


class _InOrder:
    """Tests back in the order they began (their index), from the order they finished in."""

    def __init__(self) -> None:
        self._next = 1  # test indexes start at 1
        self._waiting: list[tuple[int, str, TestCase]] = []

    def push(self, test: TestCase) -> list[TestCase]:
        """Add ``test``; return the tests whose turn it is now, in order."""
        heapq.heappush(self._waiting, (test.index, test.id, test))
        ready = []
        waiting = self._waiting
        while waiting and (waiting[0][0] <= self._next or len(waiting) > CHAIN_WINDOW):
            index, _, first = heapq.heappop(waiting)
            self._next = max(self._next, index + 1)
            ready.append(first)
        return ready

    def rest(self) -> list[TestCase]:
        """Every test still waiting, in order (the recording is over)."""
        ready = [test for _, _, test in sorted(self._waiting)]
        self._waiting.clear()
        return ready


class BodySpool:
    """Collects one body, in memory up to ``threshold`` bytes and in a temporary file beyond."""

    def __init__(
        self, bodies_dir: Path, *, threshold: int = SPOOL_THRESHOLD, fsync: bool = False
    ) -> None:
        self.size = 0
        self._dir = bodies_dir
        self._threshold = threshold
        self._fsync = fsync
        self._buffer = bytearray()
        self._file: BinaryIO | None = None
        self._tmp: Path | None = None
        self._hash: hashlib._Hash | None = None  # made when the body spills to a file
        self._done = False

    def write(self, data: bytes) -> None:
        if self._done:
            raise RuntimeError("this body spool is already finished or aborted")
        self.size += len(data)
        if self._file is not None:
            self._write_file(data)
            return
        self._buffer += data
        if len(self._buffer) > self._threshold:
            self._spill()

    def finish(self) -> Body:
        if self._done:
            raise RuntimeError("this body spool is already finished or aborted")
        self._done = True
        if self._file is None or self._tmp is None:
            data = bytes(self._buffer)
            self._buffer = bytearray()
            return data
        assert self._hash is not None
        digest = self._hash.hexdigest()
        target = self._dir / digest
        try:
            if self._fsync:
                self._file.flush()
                os.fsync(self._file.fileno())
            self._file.close()
            if target.exists():
                self._tmp.unlink()
            else:
                os.replace(self._tmp, target)
        except OSError as exc:
            self._discard()
            raise store_error(str(target), f"cannot store a body: {exc}", _SPACE_HINT) from exc
        return BlobRef(sha256=digest, size=self.size, path=os.path.abspath(target))

    def abort(self) -> None:
        self._done = True
        self._buffer = bytearray()
        self._discard()

    def _spill(self) -> None:
        self._tmp = self._dir / f"{TMP_PREFIX}{secrets.token_hex(8)}"
        try:
            self._file = open(self._tmp, "xb")  # noqa: SIM115 - closed by finish or abort
        except OSError as exc:
            raise store_error(str(self._tmp), f"cannot spool a body: {exc}", _SPACE_HINT) from exc
        data = bytes(self._buffer)
        self._buffer = bytearray()
        self._hash = hashlib.sha256()
        self._write_file(data)

    def _write_file(self, data: bytes) -> None:
        assert self._file is not None
        try:
            self._file.write(data)
        except OSError as exc:
            self.abort()
            raise store_error(str(self._tmp), f"cannot spool a body: {exc}", _SPACE_HINT) from exc
        assert self._hash is not None
        self._hash.update(data)

    def _discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


def _written() -> Future[None]:
    future: Future[None] = Future()
    future.set_result(None)
    return future


# What every successful append returns: the write is done before ``_append`` returns, so one
# finished future serves them all (a new one costs a lock and a condition each time).
_WRITTEN = _written()


def wait_written(future: Future[None]) -> None:
    """``future.result()``, without its lock for the usual append that is done already."""
    if future is not _WRITTEN:
        future.result()


class SetWriter:
    """Writes one test set under ``root/<info.name>``: journal first, YAML in the background."""

    def __init__(
        self,
        root: Path,
        info: SetInfo,
        *,
        fsync: bool = False,
        queue_size: int = 256,  # kept for compatibility; the journal needs no queue
        overwrite: bool = False,
    ) -> None:
        if not info.name or info.name in (".", "..") or "/" in info.name or "\\" in info.name:
            raise store_error(
                str(root), f"{info.name!r} is not a usable set name", "use a plain folder name"
            )
        self.path = root / info.name
        self._fsync = fsync
        self._tests = self.path / "tests"
        self._mocks = self.path / "mocks"
        self._bodies = self.path / "bodies"
        self._journal_path = self.path / journal.JOURNAL_FILE
        if not info.wiretape_version:
            info = dataclasses.replace(info, wiretape_version=__version__)
        self._info = info
        self._prepare(overwrite)
        self._write(self.path / "set.yaml", dump(fmt.setinfo_to_doc(info)))
        try:
            self._journal = journal.JournalWriter(self._journal_path, fsync=fsync)
        except OSError as exc:
            raise store_error(
                str(self._journal_path), f"cannot create the journal: {exc}", _SPACE_HINT
            ) from exc
        self._session_seen = False  # the journal holds session records
        self._detector = Detector()
        self._in_order = _InOrder()
        self.chains = 0  # chained values found in the tests written so far
        self.tests_written = 0  # tests whose YAML the background thread has written
        self._deferred: list[bytes] = []
        self._error: BaseException | None = None
        self._closed = False
        self._closing = threading.Event()
        self._wake = threading.Event()
        # Waking the thread costs a thread switch (and the GIL) per record; it is woken only when
        # it sleeps, and it does not sleep while records it has not seen are waiting.
        self._sleeping = False
        self._appends = 0
        self._last_append = 0.0
        self._done_offset = 0
        self._thread = threading.Thread(
            target=self._run, name=f"wiretape-writer-{info.name}", daemon=True
        )
        self._thread.start()

    def _prepare(self, overwrite: bool) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise store_error(
                str(self.path), "exists and is not a folder", "choose another set name"
            )
        held = self._count_tests()
        if held and not overwrite:
            raise store_error(
                str(self.path),
                f"a test set with this name already holds {held} test(s)",
                "choose another set name, delete the folder, or overwrite it (--overwrite)",
            )
        try:
            if overwrite:
                shutil.rmtree(self._tests, ignore_errors=True)
                shutil.rmtree(self._mocks, ignore_errors=True)
                self._journal_path.unlink(missing_ok=True)
            for folder in (self._tests, self._mocks, self._bodies):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise store_error(str(self.path), f"cannot create the set: {exc}", _SPACE_HINT) from exc

    def _count_tests(self) -> int:
        count = 0
        if self._tests.is_dir():
            count = sum(
                1
                for p in self._tests.iterdir()
                if p.suffix == ".yaml" and not p.name.startswith(".")
            )
        if self._journal_path.is_file() and self._journal_path.stat().st_size:
            count = max(count, 1)
        return count

    def new_spool(self) -> BodySpool:
        return BodySpool(self._bodies, fsync=self._fsync)

    def add_test(self, test: TestCase, mocks: Sequence[Mock]) -> Future[None]:
        """Record a finished test and its mocks; durable when the returned future is done."""
        fmt.check_test_id(test.id, str(self._tests))
        return self._append(journal.test_record(test, list(mocks)))

    def add_wire_test(
        self,
        test_id: str,
        request: bytes,
        response: bytes,
        started: float,
        duration: float,
        mocks: Sequence[Mock],
    ) -> Future[None]:
        """``add_test`` for an inbound exchange kept as its raw bytes
        (``journal.test_wire_record``); the caller has checked that redaction leaves it as it
        is."""
        fmt.check_test_id(test_id, str(self._tests))
        return self._append(
            journal.test_wire_record(test_id, request, response, started, duration, list(mocks))
        )

    def add_mocks(self, test_id: str, mocks: Sequence[Mock]) -> Future[None]:
        """Record mocks that finished after their test was written."""
        fmt.check_test_id(test_id, str(self._mocks))
        return self._append(journal.late_record(test_id, list(mocks)))

    def add_session_mock(self, mock: Mock) -> Future[None]:
        """Record a mock made outside any test."""
        return self._append(journal.session_record(mock))

    def defer_session_mock(self, mock: Mock) -> bool:
        """Queue a session mock for the next ``flush``: many records then cost one write.

        Returns True when the queue was empty before, so the caller knows to schedule a flush.
        Any other record, and ``close``, flushes the queue first, so journal order is kept.
        """
        if self._closed:
            raise RuntimeError(f"the writer for {self.path} is closed")
        self._deferred.append(journal.session_record(mock))
        return len(self._deferred) == 1

    def flush(self) -> None:
        """Write the queued session mocks to the journal in one append (see ``_append``)."""
        if self._deferred and not self._closed:
            self._append(b"")

    def close(self) -> None:
        """Write every YAML file, mark the set closed, drop the journal; raise the first error."""
        if self._closed:
            return
        self.flush()  # a failure is kept in self._error and raised below
        self._closed = True
        self._journal.close()
        self._closing.set()
        self._wake.set()
        self._thread.join()
        info = dataclasses.replace(self._info, closed=True, ended=time.time())
        try:
            self._write(self.path / "set.yaml", dump(fmt.setinfo_to_doc(info)))
        except StoreError as exc:
            if self._error is None:
                self._error = exc
        if self._error is not None:
            raise self._error
        # Only now is every record in the YAML files and the set marked closed.
        self._journal_path.unlink(missing_ok=True)

    def __enter__(self) -> SetWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _append(self, record: bytes) -> Future[None]:
        if self._closed:
            raise RuntimeError(f"the writer for {self.path} is closed")
        if self._deferred:
            record = b"".join(self._deferred) + record
            self._deferred.clear()
        try:
            self._journal.append(record)
        except OSError as exc:
            error = store_error(str(self._journal_path), f"cannot write: {exc}", _SPACE_HINT)
            if self._error is None:
                self._error = error
            future: Future[None] = Future()
            future.set_exception(error)
            return future
        self._last_append = time.monotonic()
        self._appends += 1
        if self._sleeping:
            self._wake.set()
        return _WRITTEN

    def _busy(self) -> bool:
        return not self._closing.is_set() and time.monotonic() - self._last_append < IDLE_SECONDS

    def backlog(self) -> int:
        """Bytes of journal not yet written out as YAML (what ``close`` still has to do)."""
        try:
            return max(0, self._journal_path.stat().st_size - self._done_offset)
        except OSError:
            return 0

    def _run(self) -> None:
        offset = 0
        seen = 0
        while True:
            self._sleeping = True
            if self._appends == seen and not self._closing.is_set():
                self._wake.wait()
            self._sleeping = False
            self._wake.clear()
            seen = self._appends
            while self._busy():
                self._closing.wait(IDLE_SECONDS)
            # ``close`` appends its last records before it sets ``_closing``: a pass that starts
            # after that sees every record, and is the last one.
            final = self._closing.is_set()
            try:
                offset = self._materialize(offset, final=final)
                self._done_offset = offset
            except Exception as exc:
                if self._error is None:
                    self._error = (
                        store_error(str(self.path), f"cannot write: {exc}", _SPACE_HINT)
                        if isinstance(exc, OSError)
                        else exc
                    )
                return
            if final:
                return

    def _materialize(self, offset: int, *, final: bool) -> int:
        """Write YAML for the journal records from ``offset``; stop early if traffic resumes.

        ``mocks/_session.yaml`` holds every session mock, so it is written once, in the
        ``final`` pass when the recording stops: rewriting it after every quiet spell would cost
        time in proportion to all the session mocks so far, again and again. Until then the
        journal holds them, and ``load_set`` reads them from there. Late mocks are gathered per
        test and added to its mocks file once per pass, so a test whose calls go on after its
        answer costs one rewrite of that file, not one per call.
        """
        late: dict[str, list[Mock]] = {}
        for record, end in journal.read(self._journal_path, self._bodies, offset):
            if record.kind == "test":
                assert record.test is not None
                if record.mocks:  # a test that caused no mock has no mocks file
                    self._write_mocks(record.test.id, record.mocks)
                self._chain(record.test)
                self.tests_written += 1
            elif record.kind == "late":
                assert record.test_id is not None
                late.setdefault(record.test_id, []).extend(record.mocks)
            else:
                self._session_seen = True
            offset = end
            if self._busy():
                self._wake.set()
                break
        for test_id, mocks in late.items():
            self._append_mocks(test_id, mocks)
        if final:
            for test in self._in_order.rest():
                self._with_chains(test, written=True)
            if self._session_seen:
                self._write_session(offset)
        return offset

    def _chain(self, test: TestCase) -> None:
        """Write ``test`` with the chains it has; one that must wait for its turn (see
        ``CHAIN_WINDOW``) is written now and again then, if it has chains."""
        ready = self._in_order.push(test)
        if not any(t is test for t in ready):
            self._write_test(test)
        for turn in ready:
            self._with_chains(turn, written=turn is not test)

    def _with_chains(self, test: TestCase, *, written: bool) -> None:
        chains = self._detector.add(test)
        if chains:
            self.chains += len(chains)
            test = dataclasses.replace(test, chains=chains)
        if chains or not written:
            self._write_test(test)

    def _write_test(self, test: TestCase) -> None:
        doc = fmt.test_to_doc(test, self._bodies, fsync=self._fsync)
        self._write(self._tests / f"{test.id}.yaml", dump(doc))

    def _write_session(self, end: int) -> None:
        """``mocks/_session.yaml`` from the journal's session records before ``end``, one mock
        at a time: what a long recording piles up is never held in memory."""
        path = self._mocks / SESSION_FILE
        head = f"format: {fmt.FORMAT}\ntest: null\nmocks:\n"

        def parts() -> Iterator[str]:
            yield head
            for mock in journal.session_mocks(self._journal_path, self._bodies, end):
                doc = fmt.mock_to_doc(mock, self._bodies, fsync=self._fsync)
                text = dump({"format": fmt.FORMAT, "test": None, "mocks": [doc]})
                if not text.startswith(head):
                    raise store_error(
                        str(path),
                        f"the YAML of {mock.id} does not continue the mocks list",
                        "the set stays loadable from journal.jsonl; please report this",
                    )
                yield text[len(head) :]

        try:
            atomic_write_parts(path, parts(), fsync=self._fsync)
        except OSError as exc:
            raise store_error(str(path), f"cannot write: {exc}", _SPACE_HINT) from exc

    def _append_mocks(self, test_id: str, mocks: Sequence[Mock]) -> None:
        path = self._mocks / f"{test_id}.yaml"
        earlier: list[Mock] = []
        if path.exists():
            doc = load(path.read_bytes(), source=str(path))
            _, earlier = fmt.doc_to_mocks(doc, self.path, source=str(path))
        self._write_mocks(test_id, [*earlier, *mocks])

    def _write_mocks(self, test_id: str | None, mocks: Sequence[Mock]) -> None:
        name = SESSION_FILE if test_id is None else f"{test_id}.yaml"
        doc = fmt.mocks_to_doc(test_id, mocks, self._bodies, fsync=self._fsync)
        self._write(self._mocks / name, dump(doc))

    def _write(self, path: Path, text: str) -> None:
        try:
            atomic_write(path, text, fsync=self._fsync)
        except OSError as exc:
            raise store_error(str(path), f"cannot write: {exc}", _SPACE_HINT) from exc
