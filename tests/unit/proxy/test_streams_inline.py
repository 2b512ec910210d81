"""Serving a socket stream inline (``serve_inline``), over real loopback connections: chunks go
to the feed in order as they arrive, and the task takes over exactly where the feed stops, at
the end of the stream, when writing pauses, or when the feed raises."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from wiretape.proxy.server import Listener
from wiretape.proxy.streams import (
    ByteStream,
    SocketStream,
    memory_pair,
    open_stream,
    serve_inline,
    terminate_app_tls,
)
from wiretape.proxy.tls import (
    CertificateAuthority,
    client_context,
    issue_server_cert,
    make_test_ca,
)

Peer = tuple[SocketStream, asyncio.StreamReader, asyncio.StreamWriter]


@asynccontextmanager
async def connected() -> AsyncIterator[Peer]:
    """A SocketStream connected to a plain asyncio peer on 127.0.0.1."""
    peers: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await peers.put((reader, writer))

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stream = await open_stream("127.0.0.1", port)
    reader, writer = await asyncio.wait_for(peers.get(), 5)
    try:
        yield stream, reader, writer
    finally:
        stream.close()
        writer.close()
        server.close()
        await server.wait_closed()


def run(test: Callable[[], object]) -> None:
    asyncio.run(asyncio.wait_for(test(), 10))  # type: ignore[arg-type]


async def exactly(reader: asyncio.StreamReader, size: int) -> bytes:
    return await asyncio.wait_for(reader.readexactly(size), 5)


def test_chunks_are_fed_in_order_and_the_task_reads_on_where_the_feed_stopped() -> None:
    async def test() -> None:
        async with connected() as (stream, reader, writer):
            fed: list[bytes] = []

            def feed(data: bytes) -> bool:
                fed.append(data)
                stream.write(b"echo:" + data + b";")  # answered in the callback
                return not data.endswith(b"stop")

            serving = asyncio.ensure_future(serve_inline(stream, feed))
            for part in (b"one", b"two", b"stop"):
                writer.write(part)
                await writer.drain()
                answer = b"echo:" + part + b";"
                assert await exactly(reader, len(answer)) == answer
                assert not serving.done() or part == b"stop"
            assert await asyncio.wait_for(serving, 5) is True
            assert fed == [b"one", b"two", b"stop"]
            writer.write(b"after")
            await writer.drain()
            assert await asyncio.wait_for(stream.read(), 5) == b"after"
            assert fed == [b"one", b"two", b"stop"]  # not fed once the task took over

    run(test)


def test_the_end_of_the_stream_hands_back_and_reads_as_the_end() -> None:
    async def test() -> None:
        async with connected() as (stream, _, writer):
            serving = asyncio.ensure_future(serve_inline(stream, lambda data: True))
            await asyncio.sleep(0)
            writer.write_eof()
            assert await asyncio.wait_for(serving, 5) is True
            assert await asyncio.wait_for(stream.read(), 5) == b""
            assert await serve_inline(stream, lambda data: True) is False  # ended: read

    run(test)


def test_an_error_in_the_feed_is_raised_in_the_task_and_the_stream_goes_on() -> None:
    async def test() -> None:
        async with connected() as (stream, _, writer):

            def feed(data: bytes) -> bool:
                raise ValueError(f"bad {data!r}")

            serving = asyncio.ensure_future(serve_inline(stream, feed))
            writer.write(b"x")
            await writer.drain()
            with pytest.raises(ValueError, match="bad b'x'"):
                await asyncio.wait_for(serving, 5)
            writer.write(b"y")
            await writer.drain()
            assert await asyncio.wait_for(stream.read(), 5) == b"y"

    run(test)


def test_writing_that_pauses_hands_back_to_the_task_which_can_drain() -> None:
    async def test() -> None:
        async with connected() as (stream, reader, writer):
            big = b"z" * (8 << 20)  # more than the socket and transport buffers hold

            def feed(data: bytes) -> bool:
                stream.write(big)
                return True  # would go on inline, but the transport pauses writing

            serving = asyncio.ensure_future(serve_inline(stream, feed))
            writer.write(b"go")
            await writer.drain()
            assert await asyncio.wait_for(serving, 5) is True
            drained = asyncio.ensure_future(stream.drain())
            assert await exactly(reader, len(big)) == big
            await asyncio.wait_for(drained, 5)

    run(test)


def test_chunks_waiting_unread_are_read_first() -> None:
    async def test() -> None:
        async with connected() as (stream, _, writer):
            writer.write(b"early")
            await writer.drain()
            await asyncio.sleep(0.05)  # received before anyone reads
            assert await serve_inline(stream, lambda data: True) is False
            assert await asyncio.wait_for(stream.read(), 5) == b"early"

    run(test)


def test_other_streams_are_read() -> None:
    async def test() -> None:
        a, _ = memory_pair()
        assert await serve_inline(a, lambda data: True) is False

    run(test)


def test_a_tls_peer_that_closes_ends_the_stream_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The peer's close_notify ends a TLS stream; asyncio warns when a protocol asks to keep a
    TLS transport open after it, and that warning reached the user's console."""
    ca_cert, ca_key = make_test_ca(tmp_path, "stream test CA")
    cert, key = issue_server_cert(ca_cert, ca_key, ["127.0.0.1"], tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")
        await writer.drain()
        writer.close()  # sends close_notify

    async def test() -> None:
        server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]
        stream = await open_stream(
            "127.0.0.1", port, tls=client_context(extra_ca=ca_cert), server_hostname="127.0.0.1"
        )
        received = b""
        while chunk := await stream.read():
            received += chunk
        assert received == b"hello"
        assert stream.at_eof
        stream.close()
        server.close()
        await server.wait_closed()

    with caplog.at_level(logging.WARNING):
        run(test)
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


def test_an_app_that_refuses_the_certificate_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``terminate_app_tls`` behind a real listener: an app that trusts the wiretape CA gets
    its bytes through; one that does not is a warning that names the CA variables."""
    ca = CertificateAuthority.load_or_create(tmp_path / "ca")
    other_ca = make_test_ca(tmp_path, "other CA")[0]
    log = logging.getLogger("wiretape.test-tls")
    served: list[bytes | None] = []

    async def handler(client: ByteStream) -> None:
        tls = await terminate_app_tls(client, ca.loopback_context(), b"", dep="db", log=log)
        served.append(None if tls is None else await tls.read())

    def app(port: int, cafile: Path) -> None:
        context = ssl.create_default_context(cafile=str(cafile))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            try:
                with context.wrap_socket(sock, server_hostname="localhost") as tls:
                    tls.sendall(b"ping")
            except ssl.SSLCertVerificationError:
                pass

    async def test() -> None:
        listener = Listener("tls test", handler)
        await listener.start()
        port = int(listener.address.rsplit(":", 1)[1])
        try:
            for cafile in (ca.cert_path, other_ca):
                await asyncio.to_thread(app, port, cafile)
                for _ in range(200):
                    if len(served) == (1 if cafile == ca.cert_path else 2):
                        break
                    await asyncio.sleep(0.01)
        finally:
            await listener.stop()

    with caplog.at_level(logging.INFO, logger="wiretape.test-tls"):
        run(test)
    assert served == [b"ping", None]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "refused wiretape's certificate" in warnings[0] and "SSL_CERT_FILE" in warnings[0]
