"""Write a test set while it is being recorded, off the proxy's hot path.

Callers hand finished tests and mocks to ``SetWriter``; a single writer thread takes them from a
bounded queue, turns them into YAML and renames each file into place. Every call returns a
Future that completes once its files are renamed, so a test whose future is done survives a kill
of the process. A full queue makes callers wait rather than letting memory grow.

Session mocks are kept in memory and ``mocks/_session.yaml`` is rewritten whole; while a rewrite
is queued, further session mocks join it instead of queueing another.

Large bodies never pass through memory whole: a ``BodySpool`` spills to ``bodies/.tmp-*`` past
1 MiB, hashing as it writes, and is renamed to ``bodies/<sha256>`` when finished.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import queue
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from wiretape import __version__
from wiretape.errors import StoreError
from wiretape.model import BlobRef, Body, Mock, SetInfo, TestCase
from wiretape.store import format as fmt
from wiretape.store.yamlio import TMP_PREFIX, atomic_write, dump, load, store_error

SPOOL_THRESHOLD = 1 << 20
SESSION_FILE = "_session.yaml"

_SPACE_HINT = "check free disk space and permissions on the test set folder"

_Job = tuple[Callable[[], None], "Future[None] | None"]


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
        self._hash = hashlib.sha256()
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
        self._write_file(data)

    def _write_file(self, data: bytes) -> None:
        assert self._file is not None
        try:
            self._file.write(data)
        except OSError as exc:
            self.abort()
            raise store_error(str(self._tmp), f"cannot spool a body: {exc}", _SPACE_HINT) from exc
        self._hash.update(data)

    def _discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


class SetWriter:
    """Writes one test set under ``root/<info.name>`` from a background thread."""

    def __init__(
        self,
        root: Path,
        info: SetInfo,
        *,
        fsync: bool = False,
        queue_size: int = 256,
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
        if not info.wiretape_version:
            info = dataclasses.replace(info, wiretape_version=__version__)
        self._info = info
        self._prepare(overwrite)
        self._write(self.path / "set.yaml", dump(fmt.setinfo_to_doc(info)))

        self._queue: queue.Queue[_Job | None] = queue.Queue(maxsize=queue_size)
        self._submit_lock = threading.Lock()
        self._session_lock = threading.Lock()
        self._session: list[Mock] = []
        self._session_docs: list[dict[str, Any]] = []
        self._session_waiters: list[Future[None]] = []
        self._session_queued = False
        self._error: BaseException | None = None
        self._closed = False
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
            for folder in (self._tests, self._mocks, self._bodies):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise store_error(str(self.path), f"cannot create the set: {exc}", _SPACE_HINT) from exc

    def _count_tests(self) -> int:
        if not self._tests.is_dir():
            return 0
        return sum(
            1 for p in self._tests.iterdir() if p.suffix == ".yaml" and not p.name.startswith(".")
        )

    def new_spool(self) -> BodySpool:
        return BodySpool(self._bodies, fsync=self._fsync)

    def add_test(self, test: TestCase, mocks: Sequence[Mock]) -> Future[None]:
        """Queue ``tests/<id>.yaml`` and ``mocks/<id>.yaml`` (written even with no mocks)."""
        fmt.check_test_id(test.id, str(self._tests))
        mocks = tuple(mocks)

        def job() -> None:
            # The mocks go first so that a test file on disk always has its mocks beside it.
            self._write_mocks(test.id, mocks)
            doc = fmt.test_to_doc(test, self._bodies, fsync=self._fsync)
            self._write(self._tests / f"{test.id}.yaml", dump(doc))

        return self._submit(job)

    def add_mocks(self, test_id: str, mocks: Sequence[Mock]) -> Future[None]:
        """Queue appending late mocks to ``mocks/<test_id>.yaml``."""
        fmt.check_test_id(test_id, str(self._mocks))
        mocks = tuple(mocks)

        def job() -> None:
            path = self._mocks / f"{test_id}.yaml"
            earlier: list[Mock] = []
            if path.exists():
                doc = load(path.read_bytes(), source=str(path))
                _, earlier = fmt.doc_to_mocks(doc, self.path, source=str(path))
            self._write_mocks(test_id, [*earlier, *mocks])

        return self._submit(job)

    def add_session_mock(self, mock: Mock) -> Future[None]:
        """Queue a rewrite of ``mocks/_session.yaml`` with ``mock`` added."""
        future: Future[None] = Future()
        with self._submit_lock:
            self._check_open()
            with self._session_lock:
                self._session.append(mock)
                self._session_waiters.append(future)
                queue_it = not self._session_queued
                self._session_queued = True
            if queue_it:
                self._queue.put((self._flush_session, None))
        return future

    def close(self) -> None:
        """Finish every queued write, mark the set closed, and raise the first write error."""
        with self._submit_lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join()
        info = dataclasses.replace(self._info, closed=True, ended=time.time())
        try:
            self._write(self.path / "set.yaml", dump(fmt.setinfo_to_doc(info)))
        except StoreError as exc:
            if self._error is None:
                self._error = exc
        if self._error is not None:
            raise self._error

    def __enter__(self) -> SetWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"the writer for {self.path} is closed")

    def _submit(self, job: Callable[[], None]) -> Future[None]:
        future: Future[None] = Future()
        with self._submit_lock:
            self._check_open()
            self._queue.put((job, future))
        return future

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            job, future = item
            if future is not None and not future.set_running_or_notify_cancel():
                continue
            try:
                try:
                    job()
                except OSError as exc:
                    raise store_error(str(self.path), f"cannot write: {exc}", _SPACE_HINT) from exc
            except Exception as exc:
                if self._error is None:
                    self._error = exc
                if future is not None:
                    future.set_exception(exc)
            else:
                if future is not None:
                    future.set_result(None)

    def _flush_session(self) -> None:
        with self._session_lock:
            mocks = self._session
            self._session = []
            waiters = self._session_waiters
            self._session_waiters = []
            self._session_queued = False
        waiters = [w for w in waiters if w.set_running_or_notify_cancel()]
        try:
            self._session_docs.extend(
                fmt.mock_to_doc(m, self._bodies, fsync=self._fsync) for m in mocks
            )
            doc = {"format": fmt.FORMAT, "test": None, "mocks": self._session_docs}
            self._write(self._mocks / SESSION_FILE, dump(doc))
        except Exception as exc:
            for waiter in waiters:
                waiter.set_exception(exc)
            raise
        for waiter in waiters:
            waiter.set_result(None)

    def _write_mocks(self, test_id: str | None, mocks: Sequence[Mock]) -> None:
        name = SESSION_FILE if test_id is None else f"{test_id}.yaml"
        doc = fmt.mocks_to_doc(test_id, mocks, self._bodies, fsync=self._fsync)
        self._write(self._mocks / name, dump(doc))

    def _write(self, path: Path, text: str) -> None:
        try:
            atomic_write(path, text, fsync=self._fsync)
        except OSError as exc:
            raise store_error(str(path), f"cannot write: {exc}", _SPACE_HINT) from exc
