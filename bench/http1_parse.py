"""Micro-benchmark: parse 100k small keep-alive requests with wiretape's HTTP/1 parser.

Run: python bench/http1_parse.py [count]. Prints requests/s; when h11 is installed it is timed on
the same bytes for comparison.
"""

from __future__ import annotations

import sys
import time

from wiretape.protocols.http1 import NEED_DATA, EndOfMessage, Http1Parser, Kind

REQUEST = (
    b"GET /api/items?page=2 HTTP/1.1\r\n"
    b"Host: shop.example.test\r\n"
    b"User-Agent: bench/1.0\r\n"
    b"Accept: application/json\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n"
    b"POST /api/items HTTP/1.1\r\n"
    b"Host: shop.example.test\r\n"
    b"Content-Type: application/json\r\n"
    b"Content-Length: 13\r\n"
    b"\r\n"
    b'{"name":"ab"}'
)
READ_SIZE = 65536


def bench_wiretape(stream: bytes) -> int:
    parser = Http1Parser(Kind.REQUEST)
    done = 0
    for start in range(0, len(stream), READ_SIZE):
        parser.feed(stream[start : start + READ_SIZE])
        while (event := parser.next_event()) is not NEED_DATA:
            if isinstance(event, EndOfMessage):
                done += 1
        parser.take_raw()
    return done


def bench_h11(stream: bytes) -> int:
    import h11

    conn = h11.Connection(h11.SERVER)
    done = 0
    for start in range(0, len(stream), READ_SIZE):
        conn.receive_data(stream[start : start + READ_SIZE])
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                break
            if isinstance(event, h11.EndOfMessage):
                done += 1
                conn.send(h11.Response(status_code=204, headers=[]))
                conn.send(h11.EndOfMessage())
                conn.start_next_cycle()
    return done


def report(name: str, run: object, stream: bytes, count: int) -> None:
    started = time.perf_counter()
    done = run(stream)  # type: ignore[operator]
    elapsed = time.perf_counter() - started
    assert done == count, f"{name} parsed {done} of {count} requests"
    print(f"{name:>9}: {count / elapsed:>10,.0f} requests/s ({elapsed:.2f} s for {count:,})")


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    stream = REQUEST * (count // 2)
    count = count // 2 * 2
    print(f"{len(stream):,} bytes, {count:,} requests, fed in {READ_SIZE:,}-byte reads")
    report("wiretape", bench_wiretape, stream, count)
    try:
        import h11  # noqa: F401
    except ImportError:
        return
    report("h11", bench_h11, stream, count)


if __name__ == "__main__":
    main()
