"""Serve one PostgreSQL dependency with wiretape's record proxy or its replay mock server.

    python bench/pg_serve.py record --upstream HOST:PORT --set DIR --port PORT
    python bench/pg_serve.py forward --upstream HOST:PORT --set DIR --port PORT
    python bench/pg_serve.py replay --set DIR --port PORT

``record`` builds ``SetWriter`` + ``Recorder`` + ``PgRecordHooks`` as ``wiretape record`` does
(no test in flight, so every exchange is a session mock); ``forward`` is the same proxy with
parsing switched off once a connection has started (what a connection falls back to after a
parse failure), the floor of the record path; ``replay`` builds ``MockIndex`` + ``PgMockServer``
as ``wiretape test`` does between tests. All run on uvloop when it is installed and serve until
SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time
from pathlib import Path

from wiretape.config import DepConfig
from wiretape.match.index import MockIndex
from wiretape.model import DepInfo, SetInfo
from wiretape.proxy.postgres import PgMockServer, PgRecordHooks, _RecordConnection
from wiretape.proxy.server import Handler, Listener, install_fast_loop
from wiretape.proxy.streams import ByteStream
from wiretape.proxy.tls import client_context
from wiretape.runner.recorder import Recorder
from wiretape.store.reader import load_set, pinned
from wiretape.store.writer import SetWriter


class ForwardOnly(PgRecordHooks):
    """The record proxy passing every connection through unparsed after its start-up."""

    async def serve(self, client: ByteStream) -> None:
        connection = _RecordConnection(self, client)
        connection.parsing = False
        await connection.run()


async def serve(args: argparse.Namespace) -> None:
    dep = DepConfig("db", "postgres", args.upstream or "127.0.0.1:1", upstream_tls="disable")
    writer: SetWriter | None = None
    index: MockIndex | None = None
    handler: Handler
    if args.mode in ("record", "forward"):
        info = SetInfo(
            args.set_dir.name, time.time(), "bench", (DepInfo("db", "postgres", dep.upstream),)
        )
        writer = SetWriter(args.set_dir.parent, info, overwrite=True)
        recorder = Recorder(writer)
        hooks = PgRecordHooks if args.mode == "record" else ForwardOnly
        handler = hooks(recorder, dep, ca=None, upstream_tls=client_context()).serve
    else:
        test_set = load_set(args.set_dir)
        index = MockIndex(test_set.session, test_set.mocks)
        index.begin_test(None)
        handler = PgMockServer(dep, index, ca=None).serve
    listener = Listener("bench db", handler, "127.0.0.1", args.port)
    await listener.start()
    print(f"pg_serve: {args.mode} listening on {listener.address}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with pinned() if index is not None else contextlib.nullcontext():  # as ``wiretape test``
        await stop.wait()
    await listener.stop(grace=0.5)
    if writer is not None:
        writer.close()
    if index is not None:
        print(f"pg_serve: {len(index.misses(None))} misses", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["record", "forward", "replay"])
    parser.add_argument("--upstream")
    parser.add_argument("--set", dest="set_dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cprofile", type=Path, help="write a cProfile of the serving process")
    args = parser.parse_args()
    install_fast_loop()
    if args.cprofile is None:
        asyncio.run(serve(args))
        return
    import cProfile

    profile = cProfile.Profile()
    profile.runcall(asyncio.run, serve(args))
    profile.dump_stats(args.cprofile)


if __name__ == "__main__":
    main()
