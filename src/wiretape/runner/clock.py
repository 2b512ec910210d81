"""The app's clock during replay: libfaketime, preloaded into the app, reading a timestamp file.

How this works:

- ``wiretape test --freeze-time`` (or ``--time-shift OFFSET``) starts the app with
  ``LD_PRELOAD=<libfaketime.so.1>`` and ``FAKETIME_TIMESTAMP_FILE=<file>``, so every dynamically
  linked runtime (Python, Node, Ruby, the JVM...) reads its wall clock through libfaketime.
  ``FAKETIME_NO_CACHE=1`` makes libfaketime read the file on every clock call, so a rewrite takes
  effect at once.
- The file holds libfaketime's *start-at* form, ``@<epoch seconds>.<microseconds>``, read with
  ``FAKETIME_FMT=%s``: when the app first reads its clock after the file changed, the clock shows
  that moment, then ticks on at the real rate. A ticking clock keeps sleeps, timeouts and
  durations working; a stopped one would not. Epoch seconds rather than a local date make the
  moment independent of the app's time zone (a local date is ambiguous in the hour a
  daylight-saving change repeats).
- Before each test the runner rewrites the file atomically: with ``--freeze-time`` to the moment
  the test was recorded (``TestCase.started``), with ``--time-shift`` to the clock wiretape runs
  with plus the offset. So the shifted clock is re-aligned at every test and does not lag by the
  app's start-up time. libfaketime re-anchors only when the line changes, so a line equal to the
  previous one gets a trailing zero (the same moment).
- Only the wall clock moves. ``FAKETIME_DONT_FAKE_MONOTONIC=1`` leaves the monotonic clock alone,
  which event loops (asyncio, libuv) and timed waits on locks rely on; with a faked monotonic
  clock those jump with every rewrite, and with libfaketime 0.9.10 a Python thread's timed wait
  never returns. ``app.env`` may set ``FAKETIME_DONT_FAKE_MONOTONIC=0`` to fake it anyway.
  ``FAKETIME_DONT_RESET`` is never passed on: it would stop a rewrite from re-anchoring the clock.
- Any other ``FAKETIME*`` variable wiretape itself inherited (for example from running under
  ``faketime``) is dropped from the app's environment: ``FAKETIME`` would take priority over the
  file. Other ``libfaketime`` entries are removed from ``LD_PRELOAD``.

The library is found, in this order: ``WIRETAPE_LIBFAKETIME``; the ``libfaketime`` Python package
(python-libfaketime on PyPI, whose wheel carries a Linux x86-64 build of the library in
``libfaketime/vendor/libfaketime/src/``); the paths where Linux distributions install it
(Debian and Ubuntu: ``/usr/lib/<multiarch>/faketime/libfaketime.so.1``). A candidate built for
another machine than wiretape's own Python is skipped, as the dynamic loader would ignore it.
Debian's libfaketime 0.9.10 makes Python 3.11+'s ``time.sleep()`` fail with ``EINVAL`` while the
monotonic clock is not faked; the build in the ``libfaketime`` wheel does not, which is why the
package comes first.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import sys
import sysconfig
import tempfile
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from wiretape.errors import SetupError
from wiretape.model import TestCase

ENV_OVERRIDE = "WIRETAPE_LIBFAKETIME"
LIBRARY = "libfaketime.so.1"
# The latest moment the file may name: the end of year 9999.
MAX_EPOCH = 253402300799

_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_OFFSET = re.compile(r"([+-]?)((?:\d+(?:\.\d+)?[wdhms])+|\d+(?:\.\d+)?)")
_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
OFFSET_SYNTAX = (
    "a signed amount with units w, d, h, m, s, largest first, e.g. +1d, -3h, +90s, -1d12h, "
    "+2w (a bare number is seconds)"
)


# --- offsets and timestamps (pure) --------------------------------------------------------------


def parse_offset(text: str) -> float:
    """``+1d`` → 86400.0, ``-1h30m`` → -5400.0; ValueError saying what is accepted."""
    match = _OFFSET.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a time offset: expected {OFFSET_SYNTAX}")
    sign, body = match.groups()
    parts = _PART.findall(body)
    if not parts:  # a bare number
        seconds = float(body)
    else:
        order = [list(_UNITS).index(unit) for _, unit in parts]
        if order != sorted(set(order)):
            raise ValueError(
                f"{text!r}: give each unit once, largest first (e.g. -1d12h), "
                f"expected {OFFSET_SYNTAX}"
            )
        seconds = sum(float(amount) * _UNITS[unit] for amount, unit in parts)
    if seconds > MAX_EPOCH:
        raise ValueError(f"{text!r} is more than the clock can be moved (up to year 9999)")
    return -seconds if sign == "-" else seconds


def format_offset(seconds: float) -> str:
    """A readable offset: ``-1d``, ``+1h30m``, ``+0.5s``."""
    sign = "-" if seconds < 0 else "+"
    rest = abs(seconds)
    out = ""
    for unit in ("d", "h", "m"):
        size = _UNITS[unit]
        whole = int(rest // size)
        if whole:
            out += f"{whole}{unit}"
            rest -= whole * size
    if rest or not out:
        out += f"{round(rest, 6):g}s"
    return sign + out


def timestamp_line(epoch: float) -> str:
    """libfaketime's start-at form in epoch seconds (read with ``FAKETIME_FMT=%s``)."""
    micros = round(epoch * 1_000_000)
    seconds, fraction = divmod(micros, 1_000_000)
    if not 0 <= seconds <= MAX_EPOCH:
        raise SetupError(
            f"the app's clock cannot be set to {epoch:.0f} (epoch seconds): libfaketime takes "
            "moments from 1970 to the year 9999\n  hint: use a smaller --time-shift"
        )
    return f"@{seconds}.{fraction:06d}\n"


# --- finding the library ----------------------------------------------------------------------


def elf_identity(path: Path) -> tuple[int, int, int] | None:
    """(class, byte order, machine) from an ELF header, or None if ``path`` is no ELF file."""
    try:
        with path.open("rb") as fh:
            head = fh.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF" or head[5] not in (1, 2):
        return None
    machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    return head[4], head[5], machine


def packaged_library() -> Path | None:
    """The library inside the ``libfaketime`` Python package, when that package is installed."""
    try:
        spec = importlib.util.find_spec("libfaketime")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "vendor" / "libfaketime" / "src" / LIBRARY
        if path.is_file():
            return path
    return None


def system_candidates(root: Path, multiarch: str | None) -> list[Path]:
    """Where distributions install the library, under ``root``, the own multiarch dir first."""
    lib = root / "usr" / "lib"
    found: list[Path] = []
    if multiarch:
        found.append(lib / multiarch / "faketime" / LIBRARY)
    found.extend(sorted(lib.glob(f"*-linux-gnu*/faketime/{LIBRARY}")))
    found.extend(
        [
            root / "usr" / "lib64" / "faketime" / LIBRARY,
            lib / "faketime" / LIBRARY,
            root / "usr" / "local" / "lib" / "faketime" / LIBRARY,
            root / "usr" / "local" / "lib" / LIBRARY,
        ]
    )
    return list(dict.fromkeys(found))


@dataclass(frozen=True, slots=True)
class Search:
    """Where to look; the defaults describe this machine, tests pass their own."""

    root: Path = Path("/")
    multiarch: str | None = sysconfig.get_config_var("MULTIARCH") or None
    packaged: Path | None = None
    machine: tuple[int, int, int] | None = None

    @classmethod
    def here(cls) -> Search:
        return cls(packaged=packaged_library(), machine=elf_identity(Path(sys.executable)))

    def candidates(self) -> list[Path]:
        return [
            *([self.packaged] if self.packaged is not None else []),
            *system_candidates(self.root, self.multiarch),
        ]


def find_libfaketime(env: Mapping[str, str], search: Search, *, flag: str) -> Path:
    """The libfaketime to preload, or a SetupError that says how to get one."""
    how = (
        "  hint: install it (Debian/Ubuntu: `apt-get install libfaketime`; Fedora: "
        "`dnf install libfaketime`), or `pip install libfaketime` into wiretape's environment "
        f"(its wheel carries a Linux x86-64 build), or set {ENV_OVERRIDE}=/path/to/{LIBRARY}"
    )
    override = env.get(ENV_OVERRIDE, "")
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise SetupError(
                f"{flag} needs libfaketime, but {ENV_OVERRIDE}={override} is not a file\n{how}"
            )
        return path.resolve()
    tried = search.candidates()
    for path in tried:
        if not path.is_file():
            continue
        identity = elf_identity(path)
        if identity is None or (search.machine is not None and identity != search.machine):
            continue
        return path
    looked = "\n".join(f"    {p}" for p in tried)
    raise SetupError(
        f"{flag} needs libfaketime ({LIBRARY}), and none was found for this machine; looked "
        f"in {ENV_OVERRIDE} (unset), the `libfaketime` Python package and:\n{looked}\n{how}"
    )


# --- the clock of one replay ------------------------------------------------------------------


def _preload_entries(value: str) -> Iterator[str]:
    for entry in re.split(r"[:\s]+", value):
        if entry and not Path(entry).name.startswith("libfaketime"):
            yield entry


class Clock:
    """The timestamp file of one replay and the environment that points the app at it.

    ``shift`` None freezes each test at its recorded time; a number of seconds shifts wiretape's
    own clock by that much. ``keep`` names variables the user set in ``app.env``, which win over
    the defaults here (but never over the variables that make the file work).
    """

    def __init__(
        self, library: Path, *, shift: float | None = None, keep: Collection[str] = ()
    ) -> None:
        self.library = library
        self.shift = shift
        self.keep = frozenset(keep)
        self._dir: Path | None = None
        self._last = ""

    @property
    def path(self) -> Path:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="wiretape-clock-"))
        return self._dir / "faketime"

    def describe(self) -> str:
        if self.shift is None:
            what = "frozen at each test's recorded time"
        else:
            what = f"shifted by {format_offset(self.shift)}"
        return f"the app's clock is {what} (libfaketime {self.library})"

    def moment(self, test: TestCase | None, now: float) -> float | None:
        """Where the clock goes before ``test``: None leaves it where it is."""
        if self.shift is not None:
            return now + self.shift
        if test is not None and test.started > 0:
            return test.started
        return None

    def set(self, epoch: float) -> None:
        """Point the file at ``epoch``; readers see the old or the new line, never a part."""
        line = timestamp_line(epoch)
        if line == self._last:
            line = line[:-1] + "0\n"
        target = self.path
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".faketime-")
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(line)
            os.replace(tmp, target)
            self._last = line
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def start(self, tests: Sequence[TestCase]) -> None:
        """Set the clock the app starts with: the first recorded test's time, or now (+ shift)."""
        first = next((t for t in tests if t.started > 0), None)
        moment = self.moment(first, time.time())
        self.set(time.time() if moment is None else moment)

    def before_test(self, test: TestCase) -> None:
        moment = self.moment(test, time.time())
        if moment is not None:
            self.set(moment)

    def app_env(self, env: Mapping[str, str]) -> dict[str, str]:
        """``env`` with libfaketime preloaded and pointed at the file."""
        out = {
            k: v
            for k, v in env.items()
            if not k.startswith("FAKETIME") or (k in self.keep and k != "FAKETIME")
        }
        out.pop("FAKETIME_DONT_RESET", None)
        others = _preload_entries(env.get("LD_PRELOAD", ""))
        out["LD_PRELOAD"] = ":".join([str(self.library), *others])
        out["FAKETIME_TIMESTAMP_FILE"] = str(self.path)
        out["FAKETIME_NO_CACHE"] = "1"
        out["FAKETIME_FMT"] = "%s"
        out.setdefault("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        return out

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def open_clock(
    *,
    freeze: bool,
    shift: float | None,
    keep: Collection[str] = (),
    env: Mapping[str, str] | None = None,
    search: Search | None = None,
) -> Clock | None:
    """The clock ``wiretape test`` asked for (None: the real one); SetupError without a library."""
    if freeze and shift is not None:
        raise SetupError("--freeze-time and --time-shift cannot be used together: choose one")
    if not freeze and shift is None:
        return None
    flag = "--freeze-time" if freeze else "--time-shift"
    if search is None and not sys.platform.startswith("linux"):
        raise SetupError(
            f"{flag} works on Linux only: it preloads libfaketime into the app (LD_PRELOAD)"
        )
    library = find_libfaketime(
        os.environ if env is None else env, search or Search.here(), flag=flag
    )
    return Clock(library, shift=shift, keep=keep)
