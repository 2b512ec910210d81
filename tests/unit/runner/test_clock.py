"""The pure parts of the replay clock: offsets, the timestamp line, finding libfaketime, the env."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from wiretape.errors import SetupError
from wiretape.model import HttpRequest, TestCase
from wiretape.runner.clock import (
    ENV_OVERRIDE,
    LIBRARY,
    MAX_EPOCH,
    Clock,
    Search,
    elf_identity,
    find_libfaketime,
    format_offset,
    open_clock,
    parse_offset,
    system_candidates,
    timestamp_line,
)

X86_64 = (2, 1, 62)  # ELFCLASS64, little-endian, EM_X86_64
AARCH64 = (2, 1, 183)
PPC64 = (2, 2, 21)  # big-endian


def elf_header(identity: tuple[int, int, int]) -> bytes:
    cls, order, machine = identity
    endian = "little" if order == 1 else "big"
    ident = b"\x7fELF" + bytes([cls, order, 1]) + bytes(9)
    return ident + (3).to_bytes(2, endian) + machine.to_bytes(2, endian) + bytes(44)


def put_library(path: Path, identity: tuple[int, int, int] = X86_64) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(elf_header(identity))
    return path


def case(started: float, n: int = 1) -> TestCase:
    return TestCase(
        id=f"{n:04d}-get-x",
        request=HttpRequest(method="GET", target="/x", headers=()),
        response=None,
        started=started,
    )


# --- offsets ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("+1d", 86400.0),
        ("-1d", -86400.0),
        ("1d", 86400.0),
        ("-3h", -10800.0),
        ("+90s", 90.0),
        ("+2w", 1209600.0),
        ("+15m", 900.0),
        ("-1d12h", -129600.0),
        ("+1w2d3h4m5s", 604800.0 + 172800 + 10800 + 240 + 5),
        ("+1.5h", 5400.0),
        ("-86400", -86400.0),
        ("120", 120.0),
        ("+0", 0.0),
        ("  -2h ", -7200.0),
    ],
)
def test_parse_offset(text: str, seconds: float) -> None:
    assert parse_offset(text) == seconds


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "not a time offset"),
        ("soon", "not a time offset"),
        ("+", "not a time offset"),
        ("d", "not a time offset"),
        ("+1x", "not a time offset"),
        ("1 d", "not a time offset"),
        ("+-1d", "not a time offset"),
        ("1d-2h", "not a time offset"),
        ("1y", "not a time offset"),
        ("1h1d", "largest first"),
        ("1h1h", "largest first"),
        ("99999999w", "up to year 9999"),
    ],
)
def test_parse_offset_rejects(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        parse_offset(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-86400.0, "-1d"),
        (5400.0, "+1h30m"),
        (0.0, "+0s"),
        (90.5, "+1m30.5s"),
        (-129600.0, "-1d12h"),
    ],
)
def test_format_offset_reads_back(seconds: float, text: str) -> None:
    assert format_offset(seconds) == text
    assert parse_offset(text) == seconds


# --- the timestamp line -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("epoch", "line"),
    [
        (1604209500.25, "@1604209500.250000\n"),
        (1604209500.0, "@1604209500.000000\n"),
        (0.0, "@0.000000\n"),
        (1.0000004, "@1.000000\n"),
        (1.9999996, "@2.000000\n"),
        (1700000000.123456, "@1700000000.123456\n"),
        (float(MAX_EPOCH), f"@{MAX_EPOCH}.000000\n"),
    ],
)
def test_timestamp_line(epoch: float, line: str) -> None:
    assert timestamp_line(epoch) == line


@pytest.mark.parametrize("epoch", [-1.0, MAX_EPOCH + 1.0, 1e20])
def test_timestamp_line_out_of_range(epoch: float) -> None:
    with pytest.raises(SetupError, match="1970 to the year 9999"):
        timestamp_line(epoch)


# --- finding the library ------------------------------------------------------------------------


def test_elf_identity(tmp_path: Path) -> None:
    assert elf_identity(put_library(tmp_path / "a.so", X86_64)) == X86_64
    assert elf_identity(put_library(tmp_path / "b.so", PPC64)) == PPC64
    (tmp_path / "text.so").write_text("INPUT(-lfaketime)\n")
    assert elf_identity(tmp_path / "text.so") is None
    (tmp_path / "short.so").write_bytes(b"\x7fELF\x02")
    assert elf_identity(tmp_path / "short.so") is None
    assert elf_identity(tmp_path / "missing.so") is None


def test_system_candidates_put_the_own_multiarch_first(tmp_path: Path) -> None:
    lib = tmp_path / "usr" / "lib"
    put_library(lib / "aarch64-linux-gnu" / "faketime" / LIBRARY)
    put_library(lib / "x86_64-linux-gnu" / "faketime" / LIBRARY)
    found = system_candidates(tmp_path, "x86_64-linux-gnu")
    assert found[0] == lib / "x86_64-linux-gnu" / "faketime" / LIBRARY
    assert found[1] == lib / "aarch64-linux-gnu" / "faketime" / LIBRARY
    assert len(found) == len(set(found))
    assert tmp_path / "usr" / "lib64" / "faketime" / LIBRARY in found
    assert tmp_path / "usr" / "local" / "lib" / "faketime" / LIBRARY in found


def test_finds_the_debian_library(tmp_path: Path) -> None:
    debian = put_library(tmp_path / "usr/lib/x86_64-linux-gnu/faketime" / LIBRARY)
    search = Search(root=tmp_path, multiarch="x86_64-linux-gnu", machine=X86_64)
    assert find_libfaketime({}, search, flag="--freeze-time") == debian


def test_skips_a_library_for_another_machine(tmp_path: Path) -> None:
    put_library(tmp_path / "usr/lib/aarch64-linux-gnu/faketime" / LIBRARY, AARCH64)
    fedora = put_library(tmp_path / "usr/lib64/faketime" / LIBRARY, X86_64)
    search = Search(root=tmp_path, multiarch=None, machine=X86_64)
    assert find_libfaketime({}, search, flag="--freeze-time") == fedora
    # The same tree on an arm64 machine takes the arm64 build.
    arm = Search(root=tmp_path, multiarch=None, machine=AARCH64)
    assert find_libfaketime({}, arm, flag="--freeze-time") == (
        tmp_path / "usr/lib/aarch64-linux-gnu/faketime" / LIBRARY
    )


def test_skips_a_file_that_is_no_library(tmp_path: Path) -> None:
    fake = tmp_path / "usr/lib/x86_64-linux-gnu/faketime" / LIBRARY
    fake.parent.mkdir(parents=True)
    fake.write_text("not a library")
    local = put_library(tmp_path / "usr/local/lib/faketime" / LIBRARY)
    search = Search(root=tmp_path, multiarch="x86_64-linux-gnu", machine=X86_64)
    assert find_libfaketime({}, search, flag="--freeze-time") == local


def test_the_python_package_comes_before_the_system(tmp_path: Path) -> None:
    put_library(tmp_path / "usr/lib/x86_64-linux-gnu/faketime" / LIBRARY)
    wheel = put_library(tmp_path / "site/libfaketime/vendor/libfaketime/src" / LIBRARY)
    search = Search(root=tmp_path, multiarch="x86_64-linux-gnu", packaged=wheel, machine=X86_64)
    assert find_libfaketime({}, search, flag="--freeze-time") == wheel
    # A wheel built for another machine is passed over.
    put_library(wheel, AARCH64)
    assert find_libfaketime({}, search, flag="--freeze-time") == (
        tmp_path / "usr/lib/x86_64-linux-gnu/faketime" / LIBRARY
    )


def test_the_env_override_wins(tmp_path: Path) -> None:
    put_library(tmp_path / "usr/lib/x86_64-linux-gnu/faketime" / LIBRARY)
    mine = put_library(tmp_path / "opt" / "mylibfaketime.so")
    search = Search(root=tmp_path, multiarch="x86_64-linux-gnu", machine=X86_64)
    found = find_libfaketime({ENV_OVERRIDE: str(mine)}, search, flag="--freeze-time")
    assert found == mine.resolve()


def test_a_missing_override_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    put_library(tmp_path / "usr/lib/x86_64-linux-gnu/faketime" / LIBRARY)
    search = Search(root=tmp_path, multiarch="x86_64-linux-gnu", machine=X86_64)
    missing = tmp_path / "nowhere" / LIBRARY
    with pytest.raises(SetupError) as info:
        find_libfaketime({ENV_OVERRIDE: str(missing)}, search, flag="--time-shift")
    text = str(info.value)
    assert text.startswith(f"--time-shift needs libfaketime, but {ENV_OVERRIDE}={missing}")
    assert "apt-get install libfaketime" in text
    assert info.value.exit_code == 2


def test_nothing_found_says_where_it_looked_and_how_to_get_it(tmp_path: Path) -> None:
    search = Search(root=tmp_path, multiarch="x86_64-linux-gnu", machine=X86_64)
    with pytest.raises(SetupError) as info:
        find_libfaketime({}, search, flag="--freeze-time")
    text = str(info.value)
    assert "--freeze-time needs libfaketime" in text
    assert str(tmp_path / "usr/lib/x86_64-linux-gnu/faketime" / LIBRARY) in text
    assert "apt-get install libfaketime" in text
    assert "pip install libfaketime" in text
    assert f"{ENV_OVERRIDE}=/path/to/{LIBRARY}" in text


def test_open_clock(tmp_path: Path) -> None:
    lib = put_library(tmp_path / "usr/lib/x86_64-linux-gnu/faketime" / LIBRARY)
    search = Search(root=tmp_path, multiarch="x86_64-linux-gnu", machine=X86_64)
    assert open_clock(freeze=False, shift=None, env={}, search=search) is None
    frozen = open_clock(freeze=True, shift=None, env={}, search=search)
    assert frozen is not None and frozen.library == lib and frozen.shift is None
    shifted = open_clock(freeze=False, shift=-3600.0, env={}, search=search)
    assert shifted is not None and shifted.shift == -3600.0
    with pytest.raises(SetupError, match="cannot be used together"):
        open_clock(freeze=True, shift=60.0, env={}, search=search)
    empty = Search(root=tmp_path / "empty", multiarch=None, machine=X86_64)
    with pytest.raises(SetupError, match="--time-shift needs libfaketime"):
        open_clock(freeze=False, shift=60.0, env={}, search=empty)


# --- the clock of one replay ------------------------------------------------------------------


LIB = Path("/opt/faketime/libfaketime.so.1")


def test_app_env_points_libfaketime_at_the_file() -> None:
    clock = Clock(LIB)
    try:
        env = clock.app_env({"PATH": "/usr/bin", "HOME": "/root"})
        assert env["PATH"] == "/usr/bin" and env["HOME"] == "/root"
        assert env["LD_PRELOAD"] == str(LIB)
        assert env["FAKETIME_TIMESTAMP_FILE"] == str(clock.path)
        assert env["FAKETIME_NO_CACHE"] == "1"
        assert env["FAKETIME_FMT"] == "%s"
        assert env["FAKETIME_DONT_FAKE_MONOTONIC"] == "1"
        assert "FAKETIME" not in env
    finally:
        clock.close()


def test_app_env_drops_an_inherited_faketime() -> None:
    # What wiretape sees when it runs under `faketime -f +1d` itself.
    inherited = {
        "LD_PRELOAD": "/usr/$LIB/faketime/libfaketime.so.1 /usr/lib/libother.so:libfaketimeMT.so.1",
        "FAKETIME": "+1d",
        "FAKETIME_SHARED": "/faketime_sem_1 /faketime_shm_1",
        "FAKETIME_DONT_RESET": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "0",
        "FAKETIME_TIMESTAMP_FILE": "/elsewhere",
    }
    clock = Clock(LIB)
    try:
        env = clock.app_env(inherited)
        assert env["LD_PRELOAD"] == f"{LIB}:/usr/lib/libother.so"
        for gone in ("FAKETIME", "FAKETIME_SHARED", "FAKETIME_DONT_RESET"):
            assert gone not in env
        assert env["FAKETIME_DONT_FAKE_MONOTONIC"] == "1"
        assert env["FAKETIME_TIMESTAMP_FILE"] == str(clock.path)
    finally:
        clock.close()


def test_app_env_keeps_what_app_env_sets_except_what_breaks_the_file() -> None:
    user = {
        "FAKETIME_DONT_FAKE_MONOTONIC": "0",
        "FAKETIME_SKIP_CMDS": "date",
        "FAKETIME": "+5d",
        "FAKETIME_DONT_RESET": "1",
        "FAKETIME_NO_CACHE": "0",
    }
    clock = Clock(LIB, keep=user.keys())
    try:
        env = clock.app_env({"LD_PRELOAD": "/usr/lib/libjemalloc.so.2", **user})
        assert env["FAKETIME_DONT_FAKE_MONOTONIC"] == "0"
        assert env["FAKETIME_SKIP_CMDS"] == "date"
        assert "FAKETIME" not in env and "FAKETIME_DONT_RESET" not in env
        assert env["FAKETIME_NO_CACHE"] == "1"
        assert env["LD_PRELOAD"] == f"{LIB}:/usr/lib/libjemalloc.so.2"
    finally:
        clock.close()


def test_freeze_moves_to_each_recorded_time(tmp_path: Path) -> None:
    clock = Clock(LIB)
    try:
        tests = [case(0.0, 1), case(1604209500.25, 2), case(1604209561.5, 3), case(0.0, 4)]
        clock.start(tests)
        file = clock.path
        assert file.read_text() == "@1604209500.250000\n"
        assert clock.moment(tests[2], now=5.0) == 1604209561.5
        clock.before_test(tests[2])
        assert file.read_text() == "@1604209561.500000\n"
        # A test without a recorded time leaves the clock where it is.
        assert clock.moment(tests[3], now=5.0) is None
        clock.before_test(tests[3])
        assert file.read_text() == "@1604209561.500000\n"
        # Only the file itself is in the directory: the writes left no temporary files.
        assert [p.name for p in file.parent.iterdir()] == [file.name]
    finally:
        clock.close()
    assert not file.parent.exists()


def test_the_same_moment_twice_still_changes_the_line() -> None:
    # libfaketime re-anchors the clock only when the line changes.
    clock = Clock(LIB)
    try:
        lines = []
        for _ in range(3):
            clock.set(1604209500.25)
            lines.append(clock.path.read_text())
        assert lines == ["@1604209500.250000\n", "@1604209500.2500000\n", "@1604209500.250000\n"]
        assert {float(line[1:]) for line in lines} == {1604209500.25}
    finally:
        clock.close()


def test_shift_follows_wiretapes_clock() -> None:
    clock = Clock(LIB, shift=-86400.0)
    try:
        assert clock.moment(case(1604209500.25), now=1700000000.0) == 1700000000.0 - 86400
        assert clock.moment(None, now=1700000000.0) == 1700000000.0 - 86400
        before = time.time()
        clock.before_test(case(1604209500.25))
        after = time.time()
        written = float(clock.path.read_text()[1:])
        assert before - 86400 - 1e-6 <= written <= after - 86400 + 1e-6
        assert "shifted by -1d" in clock.describe()
    finally:
        clock.close()


def test_a_shift_past_year_9999_is_a_setup_error() -> None:
    clock = Clock(LIB, shift=float(MAX_EPOCH))
    try:
        with pytest.raises(SetupError, match="smaller --time-shift"):
            clock.start([case(1.0)])
    finally:
        clock.close()
