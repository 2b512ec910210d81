"""CPU cost per PostgreSQL and Redis exchange, in-process and without sockets: recorded by the
record proxy, answered by the mock server; the secret redaction every recorded HTTP exchange
goes through; and the inbound proxy's own steps for one exchange of the nginx benchmark (parsing
the request and the response, recording the test, field by field or as its wire bytes).

    .venv/bin/python bench/record_cost.py [--exchanges N] [--rounds R]

Recording drives a record proxy connection (``PgRecordHooks``) past its start-up and feeds it
the bytes of an exchange of the ``pgbench -S`` shape from each side, as its two pumps do: both
directions parsed, the tracker, the stored form, and ``Recorder.add_wire_mock`` with its journal
write. Replay serves N such batches, each with its own parameter, to one mock server connection
(``PgMockServer``) from an index of N recorded mocks rebuilt from their stored form, as
``load_set`` does. The Redis rows do the same with ``redis-benchmark``'s ``SET`` (one command per
read, as without pipelining): ``RedisRecordHooks`` fed the command and its ``+OK``, and a
``RedisMockServer`` connection answering N commands from N recorded mocks. Prints the median
over rounds of microseconds per exchange, as wall time and as CPU time of the process (all its
threads).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from wiretape.config import DepConfig
from wiretape.match.index import MockIndex
from wiretape.model import (
    Body,
    HttpRequest,
    HttpResponse,
    LinkKind,
    Mock,
    SetInfo,
    WireResponse,
)
from wiretape.protocols.http1 import Http1Parser, Kind, RequestHead, ResponseHead
from wiretape.protocols.postgres.codec import encode
from wiretape.protocols.postgres.exchange import message_doc, request_for, startup_request
from wiretape.protocols.postgres.messages import (
    BackendMessage,
    Bind,
    BindComplete,
    CommandComplete,
    DataRow,
    Describe,
    Execute,
    FieldDescription,
    ObjectKind,
    ParameterStatus,
    Parse,
    ParseComplete,
    ReadyForQuery,
    RowDescription,
    StartupMessage,
    Sync,
    TransactionStatus,
)
from wiretape.proxy import redis as redis_proxy
from wiretape.proxy.httpconn import Finished
from wiretape.proxy.postgres import PgMockServer, PgRecordHooks, _RecordConnection
from wiretape.proxy.tls import client_context
from wiretape.runner.recorder import ActiveTest, Recorder
from wiretape.secrets import Secrets
from wiretape.store.writer import SetWriter

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.helpers.scripted import Scripted  # noqa: E402

SQL = "SELECT abalance FROM pgbench_accounts WHERE aid = $1;"  # what pgbench -S sends
STARTUP = StartupMessage((("user", "bench"),))
ANSWER: list[BackendMessage] = [
    ParseComplete(),
    BindComplete(),
    RowDescription((FieldDescription("abalance", 16397, 3, 23, 4, -1, 0),)),
    DataRow((b"0",)),
    CommandComplete("SELECT 1"),
    ReadyForQuery(TransactionStatus.IDLE),
]
SERVER = b"".join(encode(m) for m in ANSWER)


def client_batch(aid: int) -> bytes:
    return b"".join(
        encode(m)
        for m in (
            Parse("", SQL, ()),
            Bind("", "", (), (str(aid).encode(),), ()),
            Describe(ObjectKind.PORTAL, ""),
            Execute("", 0),
            Sync(),
        )
    )


CLIENT = client_batch(12345)


def timed(run: Callable[[], None], n: int) -> tuple[float, float]:
    """Microseconds per item: wall time and process CPU time."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return (time.perf_counter() - wall) / n * 1e6, (time.process_time() - cpu) / n * 1e6


async def _record(n: int, client: bytes) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        writer = SetWriter(Path(tmp), SetInfo("bench", time.time(), "bench"))
        recorder = Recorder(writer)
        dep = DepConfig("db", "postgres", "127.0.0.1:1", upstream_tls="disable")
        hooks = PgRecordHooks(recorder, dep, ca=None, upstream_tls=client_context())
        conn = _RecordConnection(hooks, Scripted([]))
        conn.frontend.feed(encode(STARTUP))
        conn.frontend.next_event()
        conn.ready = True

        def exchange() -> None:
            conn._parse_client(client)
            conn._parse_server(SERVER)

        result = await _exchanges(n, exchange, conn._flush)
        assert recorder.mocks == n, recorder.mocks
        writer.close()
    return result


async def _exchanges(
    n: int, exchange: Callable[[], None], flush: Callable[[], Awaitable[None]]
) -> tuple[float, float]:
    """Microseconds per exchange (wall, process CPU) of ``n`` exchanges, each fed to a record
    connection, stored, and followed by one event-loop pass, as with one client."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        exchange()
        await flush()
        await asyncio.sleep(0)
    return (time.perf_counter() - wall) / n * 1e6, (time.process_time() - cpu) / n * 1e6


def pg_record(n: int) -> tuple[float, float]:
    return asyncio.run(_record(n, CLIENT))


def _mocks(aids: list[int]) -> list[Mock]:
    answer = WireResponse({"messages": [message_doc(m) for m in ANSWER]})
    steps: list[Any] = [
        {"parse": SQL},
        None,
        {"describe_portal": ""},
        {"execute": 0},
        "sync",
    ]
    start = WireResponse(
        {
            "messages": [
                message_doc(ParameterStatus("server_version", "15.0")),
                message_doc(ReadyForQuery(TransactionStatus.IDLE)),
            ]
        }
    )
    mocks = [
        Mock("db-start", "db", "postgres", startup_request(STARTUP), start, None, LinkKind.SESSION)
    ]
    for i, aid in enumerate(aids):
        steps[1] = {"bind": SQL, "params": [str(aid)]}
        request = request_for(json.loads(json.dumps(steps)))
        response = WireResponse(json.loads(json.dumps(answer.data)))
        mocks.append(
            Mock(f"db-{i:05d}", "db", "postgres", request, response, None, LinkKind.SESSION)
        )
    return mocks


def pg_replay(n: int) -> tuple[float, float]:
    rnd = random.Random(7)
    aids = [rnd.randint(1, 100_000) for _ in range(n)]
    index = MockIndex(_mocks(aids), {})
    index.begin_test(None)
    server = PgMockServer(DepConfig("db", "postgres", "127.0.0.1:1"), index, ca=None)
    stream = Scripted([encode(STARTUP), *(client_batch(a) for a in aids)])
    result = timed(lambda: asyncio.run(server.serve(stream)), n)
    assert not index.misses(None), index.misses(None)[0]
    return result


REDIS_SET = b"*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$3\r\nVXK\r\n"


async def _redis_record(n: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        writer = SetWriter(Path(tmp), SetInfo("bench", time.time(), "bench"))
        recorder = Recorder(writer)
        hooks = redis_proxy.RedisRecordHooks(recorder, DepConfig("cache", "redis", "127.0.0.1:1"))
        conn = redis_proxy._RecordConnection(hooks, Scripted([]))

        def exchange() -> None:
            conn._parse(conn.commands, REDIS_SET, time.time(), "client")
            conn._parse(conn.replies, b"+OK\r\n", time.time(), "server")

        result = await _exchanges(n, exchange, conn._flush)
        assert recorder.mocks == n, recorder.mocks
        writer.close()
    return result


def redis_record(n: int) -> tuple[float, float]:
    return asyncio.run(_redis_record(n))


def redis_replay(n: int) -> tuple[float, float]:
    from wiretape.protocols.redis_exchange import Requests

    request = Requests().request((b"SET", b"key:__rand_int__", b"VXK"))
    mocks = [
        Mock(
            f"cache-{i:05d}",
            "cache",
            "redis",
            request,
            WireResponse({"reply": {"simple": "OK"}}),
            None,
            LinkKind.SESSION,
        )
        for i in range(n)
    ]
    index = MockIndex(mocks, {})
    index.begin_test(None)
    server = redis_proxy.RedisMockServer(DepConfig("cache", "redis", "127.0.0.1:1"), index)
    stream = Scripted([REDIS_SET] * n)
    result = timed(lambda: asyncio.run(server.serve(stream)), n)
    assert not index.misses(None), index.misses(None)[0]
    assert len(stream.sent) == 5 * n, len(stream.sent)
    return result


def http_redaction(n: int) -> tuple[float, float]:
    secrets = Secrets()
    req = HttpRequest("GET", "/data.json?x=1", (("Host", "h"), ("Accept", "*/*")), b"")
    body = json.dumps({"id": 1, "name": "x", "items": [{"a": i} for i in range(20)]}).encode()
    resp = HttpResponse(200, "OK", (("Content-Type", "application/json"),), body)

    def run() -> None:
        for _ in range(n):
            secrets.redact_request(req)
            secrets.redact_response(resp)

    return timed(run, n)


# One exchange as nginx answers the inbound benchmark's GET /data.json.
NGINX_REQUEST = b"GET /data.json HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
NGINX_BODY = b'{"items":[1,2,3],"name":"bench","ok":true}\n' * 2
NGINX_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 21 Nov 2026 18:00:00 GMT\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\n"
    b"Last-Modified: Sat, 21 Nov 2026 07:00:00 GMT\r\nConnection: keep-alive\r\n"
    b'ETag: "6550-5a"\r\nAccept-Ranges: bytes\r\n\r\n' % len(NGINX_BODY)
) + NGINX_BODY


def http_request_parse(n: int) -> tuple[float, float]:
    parser = Http1Parser(Kind.REQUEST)

    def run() -> None:
        for _ in range(n):
            parser.feed(NGINX_REQUEST)
            assert isinstance(parser.next_event(), RequestHead)
            parser.next_event()  # EndOfMessage
            parser.take_raw()

    return timed(run, n)


def http_response_parse(n: int) -> tuple[float, float]:
    parser = Http1Parser(Kind.RESPONSE)

    def run() -> None:
        for _ in range(n):
            parser.expect_response_to("GET")
            parser.feed(NGINX_RESPONSE)
            assert isinstance(parser.next_event(), ResponseHead)
            parser.next_event()  # BodyData
            parser.next_event()  # EndOfMessage
            parser.take_raw()

    return timed(run, n)


def _nginx_heads() -> tuple[RequestHead, ResponseHead]:
    req_parser = Http1Parser(Kind.REQUEST)
    req_parser.feed(NGINX_REQUEST)
    head = req_parser.next_event()
    resp_parser = Http1Parser(Kind.RESPONSE)
    resp_parser.expect_response_to("GET")
    resp_parser.feed(NGINX_RESPONSE)
    rhead = resp_parser.next_event()
    assert isinstance(head, RequestHead) and isinstance(rhead, ResponseHead)
    return head, rhead


def _timed_recording(n: int, one: Callable[[Recorder], None]) -> tuple[float, float]:
    """``one(recorder)`` n times, timed inside a running event loop, into a throwaway set."""
    with tempfile.TemporaryDirectory() as tmp:
        writer = SetWriter(Path(tmp), SetInfo(name="s", created=0.0, app_command="bench"))
        recorder = Recorder(writer)

        def run() -> None:
            for _ in range(n):
                one(recorder)

        async def measure() -> tuple[float, float]:
            return timed(run, n)

        try:
            return asyncio.run(measure())
        finally:
            writer.close()


def _begin_nginx_test(recorder: Recorder, head: RequestHead) -> tuple[ActiveTest, Body, Body]:
    """A test begun in the lane, and its two bodies as the proxy's sinks hand them over."""
    active = recorder.begin_test_now(head.method, head.target, head.headers)
    assert active is not None
    req_sink, resp_sink = recorder.new_sink(), recorder.new_sink()
    resp_sink.write(NGINX_BODY)
    return active, req_sink.finish(), resp_sink.finish()


def http_test_recorded(n: int) -> tuple[float, float]:
    """What the inbound proxy does to record one finished exchange, in lane mode: ``begin_test_now``
    and ``end_test_now`` (the test's id, redaction, ``TestCase``, the journal record and its
    append), with the two body sinks and the model objects the proxy builds."""
    head, rhead = _nginx_heads()

    def one(recorder: Recorder) -> None:
        active, req_body, resp_body = _begin_nginx_test(recorder, head)
        request = HttpRequest(head.method, head.target, head.headers, req_body)
        response = HttpResponse(200, "OK", rhead.headers, resp_body)
        done = Finished(request, response, None, time.time(), 0.001)
        recorder.end_test_now(active, done)

    return _timed_recording(n, one)


def http_test_recorded_wire(n: int) -> tuple[float, float]:
    """The same exchange as ``http_test_recorded``, kept as its wire bytes: ``begin_test_now``,
    then ``end_test_wire`` (the credential check on the raw bytes, the journal record and its
    append) with the request and response bytes and bodies the proxy collects."""
    head, rhead = _nginx_heads()

    def one(recorder: Recorder) -> None:
        active, *bodies = _begin_nginx_test(recorder, head)
        assert isinstance(bodies[0], bytes) and isinstance(bodies[1], bytes)
        kept = recorder.end_test_wire(
            active,
            b"".join([NGINX_REQUEST]),
            b"".join([NGINX_RESPONSE]),
            (head.headers, rhead.headers),
            head.target,
            (bodies[0], bodies[1]),
            time.time(),
            0.001,
        )
        assert kept

    return _timed_recording(n, one)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exchanges", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n = args.exchanges
    rows: list[tuple[str, Callable[[], tuple[float, float]]]] = [
        ("PostgreSQL exchange recorded (pgbench -S shape)", lambda: pg_record(n)),
        ("PostgreSQL batch answered by the mock server", lambda: pg_replay(n)),
        ("Redis SET recorded (redis-benchmark shape)", lambda: redis_record(n)),
        ("Redis SET answered by the mock server", lambda: redis_replay(n)),
        ("HTTP exchange redacted (request + JSON response)", lambda: http_redaction(n * 4)),
        ("HTTP request head parsed (nginx benchmark shape)", lambda: http_request_parse(n * 4)),
        ("HTTP response parsed (nginx benchmark shape)", lambda: http_response_parse(n * 4)),
        ("HTTP test recorded, lane (nginx benchmark shape)", lambda: http_test_recorded(n)),
        ("HTTP test recorded as wire bytes, lane (same)", lambda: http_test_recorded_wire(n)),
    ]
    for label, measure in rows:
        results = [measure() for _ in range(args.rounds)]
        wall = statistics.median(r[0] for r in results)
        cpu = statistics.median(r[1] for r in results)
        print(f"{label}: {wall:.1f} us wall, {cpu:.1f} us CPU")


if __name__ == "__main__":
    main()
