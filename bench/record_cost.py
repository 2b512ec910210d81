"""CPU cost of recording, in-process and without sockets: one PostgreSQL exchange through the
parsers, the tracker and ``Recorder.add_wire_mock`` (journal included), and the secret redaction
every recorded HTTP exchange goes through.

    .venv/bin/python bench/record_cost.py [--exchanges N] [--rounds R]

Prints the median over rounds of microseconds per exchange.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from wiretape.model import HttpRequest, HttpResponse, SetInfo, WireResponse
from wiretape.protocols.postgres.codec import NEED_DATA, BackendParser, FrontendParser, encode
from wiretape.protocols.postgres.exchange import Tracker
from wiretape.protocols.postgres.messages import (
    Bind,
    BindComplete,
    CommandComplete,
    DataRow,
    Describe,
    Execute,
    FieldDescription,
    ObjectKind,
    Parse,
    ParseComplete,
    ReadyForQuery,
    RowDescription,
    StartupMessage,
    Sync,
    TransactionStatus,
)
from wiretape.runner.recorder import Recorder
from wiretape.secrets import Secrets
from wiretape.store.writer import SetWriter

SQL = "SELECT abalance FROM pgbench_accounts WHERE aid = $1;"  # what pgbench -S sends
CLIENT = b"".join(
    encode(m)
    for m in (
        Parse("", SQL, ()),
        Bind("", "", (), (b"12345",), ()),
        Describe(ObjectKind.PORTAL, ""),
        Execute("", 0),
        Sync(),
    )
)
SERVER = b"".join(
    encode(m)
    for m in (
        ParseComplete(),
        BindComplete(),
        RowDescription((FieldDescription("abalance", 16397, 3, 23, 4, -1, 0),)),
        DataRow((b"0",)),
        CommandComplete("SELECT 1"),
        ReadyForQuery(TransactionStatus.IDLE),
    )
)


async def pg_exchanges(n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        writer = SetWriter(Path(tmp), SetInfo("bench", time.time(), "bench"))
        recorder = Recorder(writer)
        client = FrontendParser()
        client.feed(encode(StartupMessage((("user", "bench"),))))
        client.next_event()
        server = BackendParser()
        tracker = Tracker(new_tag=recorder.attribute_now)
        t0 = time.perf_counter()
        for _ in range(n):
            done = []
            client.feed(CLIENT)
            while (m := client.next_event()) is not NEED_DATA:
                done += tracker.client(m, time.time())
            server.feed(SERVER)
            while (r := server.next_event()) is not NEED_DATA:
                done += tracker.server(r, time.time())
            for ex in done:
                await recorder.add_wire_mock(
                    "db",
                    "postgres",
                    ex.tag,  # type: ignore[arg-type]
                    ex.request,
                    WireResponse(ex.response_data()),
                    started=ex.started,
                    duration=ex.ended - ex.started,
                )
        elapsed = time.perf_counter() - t0
        writer.close()
    return elapsed / n * 1e6


def http_redaction(n: int) -> float:
    secrets = Secrets()
    req = HttpRequest("GET", "/data.json?x=1", (("Host", "h"), ("Accept", "*/*")), b"")
    body = json.dumps({"id": 1, "name": "x", "items": [{"a": i} for i in range(20)]}).encode()
    resp = HttpResponse(200, "OK", (("Content-Type", "application/json"),), body)
    t0 = time.perf_counter()
    for _ in range(n):
        secrets.redact_request(req)
        secrets.redact_response(resp)
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exchanges", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    pg = [asyncio.run(pg_exchanges(args.exchanges)) for _ in range(args.rounds)]
    http = [http_redaction(args.exchanges * 4) for _ in range(args.rounds)]
    print(f"PostgreSQL exchange recorded (pgbench -S shape): {statistics.median(pg):.0f} us")
    print(f"HTTP exchange redacted (request + JSON response): {statistics.median(http):.1f} us")


if __name__ == "__main__":
    main()
