"""Micro-benchmark: parse 100k small replies with wiretape's RESP parser (and hiredis, if present).

Run: python bench/resp_parse.py [count]. Prints replies/s. The stream mixes what a cache-heavy app
sees: +OK, integers, short bulk strings, null bulks and a small array, fed in 64 KiB reads.
hiredis is timed on the same bytes for reference only: it cannot be used as a fast path because
its replies lose what a lossless recording needs (simple vs bulk strings, the kind of null, a
double's spelling, attributes are dropped).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from wiretape.protocols.redis import NEED_DATA, Kind, Push, Reply, RespParser

REPLIES = (
    b"+OK\r\n",
    b":1042\r\n",
    b'$21\r\n{"id":17,"name":"ab"}\r\n',
    b"$-1\r\n",
    b"*3\r\n$5\r\nitem1\r\n$5\r\nitem2\r\n:3\r\n",
)
READ_SIZE = 65536


def bench_wiretape(stream: bytes) -> int:
    parser = RespParser(Kind.REPLY)
    done = 0
    for start in range(0, len(stream), READ_SIZE):
        parser.feed(stream[start : start + READ_SIZE])
        while (event := parser.next_event()) is not NEED_DATA:
            if isinstance(event, Reply | Push):
                done += 1
    return done


def bench_hiredis(stream: bytes) -> int:
    import hiredis

    reader = hiredis.Reader()
    done = 0
    for start in range(0, len(stream), READ_SIZE):
        reader.feed(stream[start : start + READ_SIZE])
        while (reply := reader.gets()) is not False:
            del reply
            done += 1
    return done


def report(name: str, run: Callable[[bytes], int], stream: bytes, count: int) -> None:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        done = run(stream)
        best = min(best, time.perf_counter() - started)
        assert done == count, f"{name} parsed {done} of {count} replies"
    print(f"{name:>9}: {count / best:>12,.0f} replies/s ({best:.3f} s for {count:,}, best of 3)")


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    count = count // len(REPLIES) * len(REPLIES)
    stream = b"".join(REPLIES) * (count // len(REPLIES))
    print(f"{len(stream):,} bytes, {count:,} replies, fed in {READ_SIZE:,}-byte reads")
    report("wiretape", bench_wiretape, stream, count)
    try:
        import hiredis  # noqa: F401
    except ImportError:
        print("  hiredis: not installed")
        return
    report("hiredis", bench_hiredis, stream, count)


if __name__ == "__main__":
    main()
