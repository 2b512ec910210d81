from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from wiretape import model
from wiretape.errors import StoreError
from wiretape.store import reader, writer, yamlio
from wiretape.store.writer import BodySpool, SetWriter

CREATED = 1795244400.0


def info(name: str = "s1", created: float = CREATED) -> model.SetInfo:
    return model.SetInfo(name=name, created=created, app_command="uvicorn shop.main:app")


def case(index: int, body: bytes = b'{"ok":true}', path: str = "/api/orders") -> model.TestCase:
    return model.TestCase(
        id=f"{index:04d}-post-{path.strip('/').replace('/', '-') or 'root'}",
        request=model.HttpRequest("POST", path, (("Content-Type", "application/json"),), body),
        response=model.HttpResponse(201, "Created", (("Content-Type", "application/json"),), body),
        started=CREATED + index,
        duration=0.01,
    )


def mock(name: str, body: model.Body = b"rates", test: str | None = None) -> model.Mock:
    return model.Mock(
        id=name,
        dep="payments",
        protocol="http",
        request=model.HttpRequest("GET", f"/v1/{name}", (("Host", "pay.example"),)),
        response=model.HttpResponse(200, "OK", (("Content-Type", "text/plain"),), body),
        test=test,
        started=CREATED,
    )


class Gate:
    """Holds the writer thread inside its next file write until released."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.writes: list[str] = []
        real = yamlio.atomic_write

        def gated(path: Path, data: bytes | str, *, fsync: bool = False) -> None:
            self.writes.append(path.name)
            if not self.release.is_set():
                self.entered.set()
                assert self.release.wait(10)
            real(path, data, fsync=fsync)

        def gated_parts(path: Path, parts: Any, *, fsync: bool = False) -> None:
            data = b"".join(p.encode() if isinstance(p, str) else p for p in parts)
            gated(path, data, fsync=fsync)

        monkeypatch.setattr(writer, "atomic_write", gated)
        monkeypatch.setattr(writer, "atomic_write_parts", gated_parts)


# --- SetWriter -------------------------------------------------------------------------------


def test_layout_and_set_yaml_before_and_after_close(tmp_path: Path) -> None:
    w = SetWriter(tmp_path, info())
    assert w.path == tmp_path / "s1"
    assert sorted(p.name for p in w.path.iterdir()) == [
        "bodies",
        "journal.jsonl",
        "mocks",
        "set.yaml",
        "tests",
    ]
    opened = reader.read_info(w.path)
    assert opened.closed is False and opened.ended is None
    assert opened.wiretape_version
    w.close()
    assert not (w.path / "journal.jsonl").exists()
    closed = reader.read_info(w.path)
    assert closed.closed is True
    assert closed.ended is not None and abs(closed.ended - time.time()) < 60
    w.close()


def test_a_test_is_loadable_once_its_future_completes(tmp_path: Path) -> None:
    with SetWriter(tmp_path, info()) as w:
        t = case(1)
        w.add_test(t, [mock("a"), mock("b")]).result(timeout=10)
        during = reader.load_set(w.path)
        assert [x.id for x in during.tests] == [t.id]
        assert [m.id for m in during.mocks[t.id]] == ["a", "b"]
        w.add_test(case(2), []).result(timeout=10)
        assert [x.id for x in reader.load_set(w.path).tests] == [t.id, case(2).id]
    for stem in (t.id, case(2).id):
        assert (w.path / "tests" / f"{stem}.yaml").is_file()
    assert (w.path / "mocks" / f"{t.id}.yaml").is_file()
    assert not (w.path / "mocks" / f"{case(2).id}.yaml").exists()  # it caused no mock
    loaded = reader.load_set(w.path)
    assert [x.id for x in loaded.tests] == [case(1).id, case(2).id]
    assert [m.id for m in loaded.mocks[case(1).id]] == ["a", "b"]
    assert all(m.test == case(1).id for m in loaded.mocks[case(1).id])
    assert loaded.mocks[case(2).id] == ()
    assert loaded.tests[0] == case(1)


def test_late_mocks_are_appended(tmp_path: Path) -> None:
    with SetWriter(tmp_path, info()) as w:
        t = case(1)
        w.add_test(t, [mock("a", body=b"\xff" * 300)])
        w.add_mocks(t.id, [mock("late")])
        w.add_mocks(t.id, [mock("later"), mock("latest")])
    loaded = reader.load_set(w.path)
    assert [m.id for m in loaded.mocks[t.id]] == ["a", "late", "later", "latest"]
    first = loaded.mocks[t.id][0].response
    assert first is not None and model.body_bytes(first.body) == b"\xff" * 300


def test_session_mocks_in_a_burst_are_written_in_one_rewrite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = SetWriter(tmp_path, info())
    gate = Gate(monkeypatch)
    w.add_test(case(1), [])
    assert gate.entered.wait(10)  # the background thread is stuck in a YAML write
    futures = [w.add_session_mock(mock(f"s{i}")) for i in range(5)]
    assert all(f.done() and f.exception() is None for f in futures)  # durable already
    gate.release.set()
    w.close()
    assert gate.writes.count(writer.SESSION_FILE) == 1
    session = reader.load_set(w.path).session
    assert [m.id for m in session] == [f"s{i}" for i in range(5)]
    assert all(m.test is None for m in session)


def test_slow_yaml_never_holds_up_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = SetWriter(tmp_path, info())
    gate = Gate(monkeypatch)
    w.add_test(case(1), [])
    assert gate.entered.wait(10)
    futures = [w.add_test(case(i), [mock(f"m{i}")]) for i in range(2, 502)]
    assert all(f.done() for f in futures)
    assert len(reader.load_set(w.path).tests) == 501  # from the journal, before any YAML
    gate.release.set()
    w.close()
    loaded = reader.load_set(w.path)
    assert len(loaded.tests) == 501
    assert not (w.path / "journal.jsonl").exists()
    assert len(list((w.path / "tests").glob("*.yaml"))) == 501


def test_yaml_errors_reach_close_and_keep_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = SetWriter(tmp_path, info())
    real = yamlio.atomic_write

    def failing(path: Path, data: bytes | str, *, fsync: bool = False) -> None:
        if path.name.startswith("0001"):
            raise OSError(28, "No space left on device")
        real(path, data, fsync=fsync)

    monkeypatch.setattr(writer, "atomic_write", failing)
    assert w.add_test(case(1), []).result(timeout=10) is None
    assert w.add_test(case(2), []).result(timeout=10) is None
    with pytest.raises(StoreError) as raised:
        w.close()
    assert "0001-post-api-orders.yaml" in str(raised.value)
    assert "No space left" in str(raised.value) and "hint:" in str(raised.value)
    # Nothing is lost: the journal stays and the set still loads both tests.
    assert (w.path / "journal.jsonl").exists()
    assert [t.id for t in reader.load_set(w.path).tests] == [case(1).id, case(2).id]
    w.close()


def test_body_file_errors_are_store_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wiretape.store import format as fmt

    def broken(path: Path, data: bytes | str, *, fsync: bool = False) -> None:
        raise OSError(5, "I/O error")

    monkeypatch.setattr(fmt, "atomic_write", broken)
    w = SetWriter(tmp_path, info())
    w.add_test(case(1, body=b"\xff" * 1000), []).result(timeout=10)
    with pytest.raises(StoreError, match="I/O error"):
        w.close()


def test_journal_append_errors_reach_the_future(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = SetWriter(tmp_path, info())

    def full(data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(w._journal, "append", full)
    error = w.add_test(case(1), []).exception(timeout=10)
    assert isinstance(error, StoreError) and "No space left" in str(error)
    with pytest.raises(StoreError):
        w.close()


def test_closed_writer_refuses_work(tmp_path: Path) -> None:
    w = SetWriter(tmp_path, info())
    w.close()
    with pytest.raises(RuntimeError, match="closed"):
        w.add_test(case(1), [])
    with pytest.raises(RuntimeError, match="closed"):
        w.add_session_mock(mock("x"))


def test_existing_set_needs_overwrite(tmp_path: Path) -> None:
    with SetWriter(tmp_path, info()) as w:
        w.add_test(case(1, body=b"\xff" * 1000), [mock("a")])
    bodies = sorted(p.name for p in (w.path / "bodies").iterdir())
    with pytest.raises(StoreError, match="already holds 1 test") as raised:
        SetWriter(tmp_path, info())
    assert "overwrite" in str(raised.value)
    with SetWriter(tmp_path, info(), overwrite=True) as w2:
        assert list((w2.path / "tests").iterdir()) == []
        assert list((w2.path / "mocks").iterdir()) == []
        assert sorted(p.name for p in (w2.path / "bodies").iterdir()) == bodies
        w2.add_test(case(7), [])
    assert [t.id for t in reader.load_set(w2.path).tests] == [case(7).id]


def test_empty_existing_set_is_reused(tmp_path: Path) -> None:
    SetWriter(tmp_path, info()).close()
    SetWriter(tmp_path, info()).close()


@pytest.mark.parametrize("name", ["", ".", "..", "a/b"])
def test_bad_set_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(StoreError, match="not a usable set name"):
        SetWriter(tmp_path, info(name))


def test_bad_test_id_is_refused_before_queueing(tmp_path: Path) -> None:
    with SetWriter(tmp_path, info()) as w, pytest.raises(StoreError, match="not valid"):
        w.add_test(model.TestCase("../escape", case(1).request, None), [])


def test_fsync_mode_writes_the_same_files(tmp_path: Path) -> None:
    with SetWriter(tmp_path, info(), fsync=True) as w:
        w.add_test(case(1, body=b"\xff" * 1000), [mock("a")])
        spool = w.new_spool()
        spool.write(b"x" * 10)
        assert spool.finish() == b"x" * 10
    assert len(reader.load_set(w.path).tests) == 1


# --- BodySpool -------------------------------------------------------------------------------


def test_small_spool_stays_in_memory(tmp_path: Path) -> None:
    spool = BodySpool(tmp_path, threshold=10)
    spool.write(b"01234")
    spool.write(b"56789")
    assert spool.size == 10
    assert spool.finish() == b"0123456789"
    assert list(tmp_path.iterdir()) == []


def test_large_spool_is_hashed_into_bodies(tmp_path: Path) -> None:
    data = os.urandom(5000)
    spool = BodySpool(tmp_path, threshold=100)
    for i in range(0, len(data), 333):
        spool.write(data[i : i + 333])
    digest = hashlib.sha256(data).hexdigest()
    assert next(p.name for p in tmp_path.iterdir()).startswith(".tmp-")
    ref = spool.finish()
    assert ref == model.BlobRef(sha256=digest, size=5000, path=str(tmp_path / digest))
    assert [p.name for p in tmp_path.iterdir()] == [digest]
    again = BodySpool(tmp_path, threshold=100)
    again.write(data)
    assert again.finish() == ref
    assert [p.name for p in tmp_path.iterdir()] == [digest]
    with pytest.raises(RuntimeError):
        again.write(b"more")


def test_aborted_spool_leaves_nothing(tmp_path: Path) -> None:
    spool = BodySpool(tmp_path, threshold=4)
    spool.write(b"0123456789")
    spool.abort()
    assert list(tmp_path.iterdir()) == []


def test_spooled_body_is_stored_by_reference(tmp_path: Path) -> None:
    with SetWriter(tmp_path, info()) as w:
        spool = BodySpool(w.path / "bodies", threshold=64)
        data = bytes(range(256)) * 8
        spool.write(data)
        body = spool.finish()
        assert isinstance(body, model.BlobRef)
        w.add_test(case(1), [mock("big", body=body)])
    response = reader.load_set(w.path).mocks[case(1).id][0].response
    assert response is not None and response.body == body


# --- reading ---------------------------------------------------------------------------------


def test_load_set_sorts_by_index_and_ignores_temp_files(tmp_path: Path) -> None:
    with SetWriter(tmp_path, info()) as w:
        for index in (10000, 9999, 2):
            w.add_test(case(index), [mock(f"m{index}")])
    (w.path / "tests" / ".tmp-abc-0003-post-x.yaml").write_text("format: [broken")
    (w.path / "mocks" / ".tmp-abc-0003-post-x.yaml").write_text("format: [broken")
    (w.path / "mocks" / f"{case(2).id}.yaml").unlink()
    loaded = reader.load_set(w.path)
    assert [t.index for t in loaded.tests] == [2, 9999, 10000]
    assert loaded.mocks[case(2).id] == ()
    assert loaded.session == ()


def test_interrupted_set_loads(tmp_path: Path) -> None:
    w = SetWriter(tmp_path, info())
    w.add_test(case(1), []).result(timeout=10)
    loaded = reader.load_set(w.path)
    assert loaded.info.closed is False and len(loaded.tests) == 1
    w.close()


def test_load_set_errors_name_the_file(tmp_path: Path) -> None:
    with SetWriter(tmp_path, info()) as w:
        w.add_test(case(1), [mock("a")])
    test_file = w.path / "tests" / f"{case(1).id}.yaml"
    test_file.rename(w.path / "tests" / "0002-renamed.yaml")
    with pytest.raises(StoreError, match=r"0002-renamed\.yaml: id: .*does not match"):
        reader.load_set(w.path)
    (w.path / "tests" / "0002-renamed.yaml").write_text("format: wiretape/v1\nid: [\n")
    with pytest.raises(StoreError, match=r"0002-renamed\.yaml:\d+: not valid YAML"):
        reader.load_set(w.path)
    with pytest.raises(StoreError, match=r"set\.yaml is missing"):
        reader.load_set(tmp_path)


def test_mocks_file_must_belong_to_its_test(tmp_path: Path) -> None:
    with SetWriter(tmp_path, info()) as w:
        w.add_test(case(1), [mock("a")])
    path = w.path / "mocks" / f"{case(1).id}.yaml"
    path.write_text(path.read_text().replace(f"test: {case(1).id}", "test: 0009-get-x"))
    with pytest.raises(StoreError, match=r"test: names '0009-get-x'"):
        reader.load_set(w.path)


def test_list_and_resolve_sets(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="wiretape record"):
        reader.resolve_set(tmp_path, None)
    SetWriter(tmp_path, info("zeta", created=CREATED)).close()
    SetWriter(tmp_path, info("alpha", created=CREATED + 60)).close()
    (tmp_path / ".runs").mkdir()
    assert [p.name for p in reader.list_sets(tmp_path)] == ["zeta", "alpha"]
    assert reader.resolve_set(tmp_path, None) == tmp_path / "alpha"
    assert reader.resolve_set(tmp_path, "zeta") == tmp_path / "zeta"
    with pytest.raises(StoreError, match="no test set named 'nope'") as raised:
        reader.resolve_set(tmp_path, "nope")
    assert "zeta, alpha" in str(raised.value)
    assert reader.list_sets(tmp_path / "missing") == []


def test_save_test_rewrites_one_test(tmp_path: Path) -> None:
    with SetWriter(tmp_path, info()) as w:
        w.add_test(case(1), [])
        w.add_test(case(2), [])
    loaded = reader.load_set(w.path)
    noisy = model.TestCase(**{**_fields(loaded.tests[0]), "noise": ("header.Date",)})
    reader.save_test(w.path, noisy)
    again = reader.load_set(w.path)
    assert again.tests[0].noise == ("header.Date",)
    assert again.tests[1] == loaded.tests[1]


def _fields(t: model.TestCase) -> dict[str, Any]:
    return {name: getattr(t, name) for name in t.__slots__}


# --- kill -9 ---------------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from wiretape import model
    from wiretape.store.writer import BodySpool, SetWriter

    root, name = Path(sys.argv[1]), sys.argv[2]
    out = threading.Lock()

    def report(tag):
        def done(future):
            if future.exception() is None:
                with out:
                    sys.stdout.write(tag + "\\n")
                    sys.stdout.flush()
        return done

    info = model.SetInfo(name=name, created=1.0, app_command="app")
    w = SetWriter(root, info, queue_size=8)
    i = 0
    while True:
        i += 1
        spool = BodySpool(w.path / "bodies", threshold=256)
        spool.write(i.to_bytes(4, "big") * 200)
        big = spool.finish()
        req = model.HttpRequest("POST", f"/items/{i}", (("Content-Type", "text/plain"),), b"x" * i)
        resp = model.HttpResponse(200, "OK", (), bytes([i % 256]) * 300)
        test = model.TestCase(f"{i:04d}-post-items-{i}", req, resp)
        mocks = [
            model.Mock(f"{i}-a", "db", "http", req, resp, test.id),
            model.Mock(f"{i}-b", "db", "http", req, resp.__class__(200, "OK", (), big), test.id),
        ]
        w.add_test(test, mocks).add_done_callback(report(test.id))
        if i % 7 == 0:
            w.add_session_mock(mocks[0]).add_done_callback(report("session"))
    """
)


def _run_and_kill(script: Path, root: Path, name: str, delay: float) -> list[str]:
    proc = subprocess.Popen(
        [sys.executable, str(script), str(root), name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    lines: list[bytes] = []
    first = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in iter(proc.stdout.readline, b""):
            lines.append(line)
            first.set()

    pumper = threading.Thread(target=pump)
    pumper.start()
    try:
        started = first.wait(30)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(30)
        # Only the pump thread reads stdout: two readers of one pipe race inside CPython.
        pumper.join(30)
        assert proc.stderr is not None
        err = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    assert started, f"the child wrote nothing: {err.decode(errors='replace')}"
    assert proc.returncode == -signal.SIGKILL
    return [line.decode().strip() for line in lines if line.endswith(b"\n")]


@pytest.mark.slow
def test_kill_9_leaves_a_loadable_set_with_every_completed_test(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    for round_ in range(6):
        name = f"killed{round_}"
        done = _run_and_kill(script, tmp_path, name, rng.uniform(0.0, 0.4))
        completed = [tag for tag in done if tag != "session"]
        sessions = done.count("session")
        loaded = reader.load_set(tmp_path / name)
        ids = {t.id for t in loaded.tests}
        missing = [t for t in completed if t not in ids]
        assert not missing, f"seed {seed}, round {round_}: completed but lost: {missing[:5]}"
        assert len(loaded.session) >= sessions
        for test in loaded.tests:
            i = test.index
            assert model.body_bytes(test.request.body) == b"x" * i
            _, b = loaded.mocks[test.id]
            assert b.response is not None
            assert model.body_bytes(b.response.body) == i.to_bytes(4, "big") * 200
        leftovers = [p for p in (tmp_path / name).rglob("*") if p.name.startswith(".tmp-")]
        assert all(p.parent.name in ("tests", "mocks", "bodies", name) for p in leftovers)


def test_yaml_files_start_with_the_format(tmp_path: Path) -> None:
    with SetWriter(tmp_path, info()) as w:
        w.add_test(case(1), [mock("a")])
        w.add_session_mock(mock("s"))
    for path in w.path.rglob("*.yaml"):
        assert path.read_text().startswith("format: wiretape/v2\n"), path
        assert yamlio.load(path.read_bytes(), source=str(path))["format"] == "wiretape/v2"


def test_yaml_files_appear_while_recording_is_idle(tmp_path: Path) -> None:
    with SetWriter(tmp_path, info()) as w:
        t = case(1)
        w.add_test(t, [mock("a")]).result(timeout=10)
        assert appears(w.path / "tests" / f"{t.id}.yaml")
        assert (w.path / "mocks" / f"{t.id}.yaml").is_file()


def appears(path: Path, within: float = 10.0) -> bool:
    """Whether ``path`` exists within ``within`` seconds (the writer thread makes it)."""
    deadline = time.monotonic() + within
    while not path.is_file() and time.monotonic() < deadline:
        time.sleep(0.01)
    return path.is_file()


def test_a_torn_last_journal_line_is_ignored(tmp_path: Path) -> None:
    w = SetWriter(tmp_path, info())
    w.add_test(case(1), [mock("a")]).result(timeout=10)
    w._closing.set()  # stop the background thread without writing YAML or closing the set
    w._wake.set()
    w._thread.join()
    with open(w.path / "journal.jsonl", "ab") as fh:
        fh.write(b'{"k":"test","id":"0002-get-x","rq":{"m":"GET"')
    loaded = reader.load_set(w.path)
    assert [x.id for x in loaded.tests] == [case(1).id]
    assert loaded.info.closed is False


def test_deferred_session_mocks_share_one_journal_write_and_keep_their_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = SetWriter(tmp_path, info())
    appends: list[bytes] = []
    real = w._journal.append
    monkeypatch.setattr(w._journal, "append", lambda data: (appends.append(data), real(data)))
    assert w.defer_session_mock(mock("s0")) is True  # first in the queue: schedule a flush
    assert w.defer_session_mock(mock("s1")) is False
    assert appends == []  # nothing written before the flush
    w.flush()
    assert len(appends) == 1 and appends[0].count(b"\n") == 2
    w.defer_session_mock(mock("s2"))
    w.add_session_mock(mock("s3"))  # another record writes the queue first, in order
    assert len(appends) == 2 and appends[1].count(b"\n") == 2
    w.defer_session_mock(mock("s4"))
    w.close()  # close flushes what is still queued
    session = reader.load_set(w.path).session
    assert [m.id for m in session] == [f"s{i}" for i in range(5)]


def test_deferred_session_mocks_survive_a_crash_once_flushed(tmp_path: Path) -> None:
    w = SetWriter(tmp_path, info())
    for i in range(3):
        w.defer_session_mock(mock(f"s{i}"))
    w.flush()
    w._journal.close()  # the process dies here: no close(), no YAML
    session = reader.load_set(w.path).session
    assert [m.id for m in session] == ["s0", "s1", "s2"]


def test_the_session_file_is_written_once_when_the_recording_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[str] = []
    real = yamlio.atomic_write

    def counted(path: Path, data: bytes | str, *, fsync: bool = False) -> None:
        written.append(path.name)
        real(path, data, fsync=fsync)

    def counted_parts(path: Path, parts: Any, *, fsync: bool = False) -> None:
        written.append(path.name)
        yamlio.atomic_write_parts(path, parts, fsync=fsync)

    monkeypatch.setattr(writer, "atomic_write", counted)
    monkeypatch.setattr(writer, "atomic_write_parts", counted_parts)
    w = SetWriter(tmp_path, info())
    for spell in range(3):  # three bursts, each followed by a quiet spell the thread writes in
        for i in range(4):
            w.add_session_mock(mock(f"s{spell}-{i}"))
        w.add_test(case(spell + 1), [])
        deadline = time.monotonic() + 10
        while w.backlog() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert w.backlog() == 0
    assert writer.SESSION_FILE not in written
    during = reader.load_set(w.path)  # the journal holds the session mocks meanwhile
    assert [m.id for m in during.session] == [f"s{s}-{i}" for s in range(3) for i in range(4)]
    w.close()
    assert written.count(writer.SESSION_FILE) == 1
    assert not (w.path / "journal.jsonl").exists()
    after = reader.load_set(w.path)
    assert [m.id for m in after.session] == [m.id for m in during.session]


def test_pinned_exempts_a_loaded_set_from_the_collector_until_the_block_ends(
    tmp_path: Path,
) -> None:
    import gc

    with SetWriter(tmp_path, info()) as w:
        w.add_test(case(1), [mock("a")])
    loaded = reader.load_set(w.path)
    held = loaded.mocks[case(1).id][0].request.headers  # a container the collector tracks
    assert gc.is_tracked(held)

    def scanned() -> bool:
        return any(o is held for o in gc.get_objects())

    assert scanned()
    with reader.pinned():
        assert gc.get_freeze_count() > 0
        assert not scanned()  # in the permanent generation: no collection looks at it
    assert gc.get_freeze_count() == 0
    assert scanned()


def test_many_late_mocks_of_a_test_rewrite_its_file_once_per_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[str | None] = []
    real = writer.SetWriter._write_mocks

    def counted(self: writer.SetWriter, test_id: str | None, mocks: Any) -> None:
        writes.append(test_id)
        real(self, test_id, mocks)

    monkeypatch.setattr(writer.SetWriter, "_write_mocks", counted)
    with SetWriter(tmp_path, info()) as w:
        w.add_test(case(1), [mock("own")])
        w.add_test(case(2), [])
        for i in range(40):
            w.add_mocks(case(1).id, [mock(f"late{i}")])
            w.add_mocks(case(2).id, [mock(f"bg{i}")])
    assert sorted(writes, key=str) == [case(1).id, case(1).id, case(2).id]
    loaded = reader.load_set(w.path)
    assert [m.id for m in loaded.mocks[case(1).id]] == ["own", *(f"late{i}" for i in range(40))]
    assert [m.id for m in loaded.mocks[case(2).id]] == [f"bg{i}" for i in range(40)]


def test_the_session_file_is_streamed_from_the_journal_in_order(tmp_path: Path) -> None:
    big = bytes(range(256)) * 20_000  # stored under bodies/
    with SetWriter(tmp_path, info()) as w:
        for i in range(30):
            w.add_session_mock(mock(f"s{i:02d}", body=big if i == 7 else f"rates {i}".encode()))
            if i % 10 == 9:
                w.add_test(case(i), [mock(f"t{i}")])
                w.add_mocks(case(i).id, [mock(f"late{i}")])
    assert not (w.path / "journal.jsonl").exists()
    text = (w.path / "mocks" / writer.SESSION_FILE).read_text()
    assert text.startswith(f"format: {writer.fmt.FORMAT}\ntest: null\nmocks:\n- ")
    loaded = reader.load_set(w.path)
    assert [m.id for m in loaded.session] == [f"s{i:02d}" for i in range(30)]
    response = loaded.session[7].response
    assert isinstance(response, model.HttpResponse)
    assert model.body_bytes(response.body) == big
    assert [m.id for m in loaded.mocks[case(9).id]] == ["t9", "late9"]
    # The same mocks dumped as one document read back the same.
    whole = yamlio.load(text, source="session")
    assert [d["id"] for d in whole["mocks"]] == [m.id for m in loaded.session]


def test_an_unfinished_recording_keeps_what_was_written_into_its_test_files(
    tmp_path: Path,
) -> None:
    """Learned noise, chains or a hand edit saved into the test file of a recording that never
    closed (killed, or still running) is what loads, not the journal's copy of the test."""
    w = SetWriter(tmp_path, info())
    try:
        first, second = case(1), case(2)
        w.add_test(first, [mock("a")]).result(timeout=10)
        assert appears(w.path / "tests" / f"{first.id}.yaml")
        reader.save_test(w.path, dataclasses.replace(first, noise=("body.ok",)))
        w.add_test(second, []).result(timeout=10)  # still only in the journal, maybe
        loaded = reader.load_set(w.path)
        assert loaded.info.closed is False
        assert [t.noise for t in loaded.tests] == [("body.ok",), ()]
        assert [m.id for m in loaded.mocks[first.id]] == ["a"]
    finally:
        w.close()
    assert reader.load_set(w.path).tests[0].noise == ("body.ok",)
