"""Generic TCP: the record proxy in front of a real server, and the mock server for replay.

Record (``TcpRecordHooks``): each client connection gets its own upstream connection. Bytes are
forwarded as they arrive in both directions and only then handed to the ``Tracker``, which cuts
the connection into turns (see ``wiretape.protocols.tcp``); each finished turn becomes a mock
linked to the test that was in flight when its client bytes began. A server greeting is linked
to the test in flight when the connection opened. Nothing is parsed, so no bytes can fail. Known
key formats leave each turn as placeholders of the same length (``Secrets.redact_bytes``): the
tracker redacts what it holds, ``_RecordConnection._redacted`` a large answer kept aside.

Replay (``TcpMockServer``): a reader task collects the client's bytes into a buffer as they come.
The buffer is matched against the client bytes of every recorded turn of the dependency
(``Sends``): while it is still the beginning of a recording, more bytes are awaited; once it
begins with a recording, that turn is looked up in the ``MockIndex`` and its server chunks are
sent, with their recorded pauses (``latency="recorded"``) or at once (``latency="none"``), and
the matched bytes leave the buffer. When the buffer both holds a whole recording and begins a
longer one, ``EXTEND_WAIT`` decides: if no more bytes come by then, the shorter one answers. Bytes
that match no recording, or that stop coming for ``STALL_WAIT`` in the middle of one, are a miss:
the miss is kept for the test's report (with the closest recorded turns) and the connection is
closed, since no bytes could be a right answer. A dependency with recorded greetings sends one
as soon as a connection opens. Placeholders are matched and served with their real values where
the secrets file holds them (``Secrets.reveal_bytes``); a miss shows the app's bytes redacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Iterable
from typing import cast

from wiretape.config import DepConfig
from wiretape.match.index import MockIndex
from wiretape.model import BlobRef, Miss, Mock, WireRequest, WireResponse
from wiretape.protocols.tcp import (
    HEAD,
    Answer,
    Digest,
    Exchange,
    Match,
    Send,
    Sends,
    Tracker,
    answer_of,
    request_for,
    rewrite_stream,
    send_of,
)
from wiretape.protocols.wire import PlainError
from wiretape.proxy.streams import READ_SIZE, ByteStream, open_stream
from wiretape.runner.recorder import Attribution, Recorder
from wiretape.secrets import Secrets

__all__ = ["LATENCIES", "TcpMockServer", "TcpRecordHooks"]

log = logging.getLogger("wiretape.tcp")

PROTOCOL = "tcp"
LATENCIES = ("recorded", "none")
EXTEND_WAIT = 0.05  # seconds: a whole recording that may grow into a longer one waits this long
STALL_WAIT = 2.0  # seconds: client bytes that stop in the middle of every recording are a miss
CLOSE_WAIT = 5.0  # seconds: how long the other direction may go on once one side has closed
TLS_CLOSE_WAIT = 0.5  # the same toward a TLS server, which never sees the app's half-close


# -- record -------------------------------------------------------------------------------------


class TcpRecordHooks:
    """Record proxy for one ``protocol: tcp`` dependency (or a connection ``auto`` gave up on).

    ``tls``: speak TLS to the server with this context (``auto`` terminates an app's TLS and
    records what runs inside it).
    """

    def __init__(
        self, recorder: Recorder, dep: DepConfig, *, tls: ssl.SSLContext | None = None
    ) -> None:
        self.recorder = recorder
        self.dep = dep
        self.tls = tls

    async def connect(self) -> ByteStream | None:
        dep = self.dep
        tls = self.tls
        try:
            return await open_stream(
                dep.upstream_host,
                dep.upstream_port,
                tls=tls,
                server_hostname=dep.upstream_host if tls is not None else None,
            )
        except (TimeoutError, OSError) as exc:
            log.warning("%s: cannot reach %s: %s", dep.name, dep.upstream, exc)
            return None

    async def serve(self, client: ByteStream) -> None:
        await self.relay(client)

    async def relay(
        self,
        client: ByteStream,
        upstream: ByteStream | None = None,
        *,
        opening: Attribution | None = None,
        connected: float | None = None,
        greeting: bytes = b"",
        greeted: float | None = None,
    ) -> None:
        """Record ``client`` against ``upstream`` (opened here when None). ``greeting`` is
        server bytes already read (at ``greeted``) and not yet forwarded."""
        attr = opening or self.recorder.attribute_now()
        if upstream is None:
            upstream = await self.connect()
            if upstream is None:
                return
            connected = time.time()
        await _RecordConnection(self, client, upstream, attr, connected or time.time()).run(
            greeting, greeted
        )


class _RecordConnection:
    def __init__(
        self,
        hooks: TcpRecordHooks,
        client: ByteStream,
        upstream: ByteStream,
        opening: Attribution,
        connected: float,
    ) -> None:
        self.hooks = hooks
        self.dep = hooks.dep.name
        self.client = client
        self.upstream = upstream
        recorder = hooks.recorder
        self.tracker = Tracker(
            opened=connected,
            new_tag=recorder.attribute_now,
            opening_tag=opening,
            spool=recorder.new_sink,
            redact=recorder.secrets.redact_bytes,
        )

    async def run(self, greeting: bytes, greeted: float | None) -> None:
        up: asyncio.Task[None] | None = None
        try:
            if greeting:
                self.client.write(greeting)
                self.tracker.server(greeting, greeted or time.time())
            up = asyncio.create_task(self._pump_server())
            await self._pump_client()
            # The app is done: the server may still owe answers. Over plain TCP it saw the end
            # and closes; a TLS connection cannot be half-closed, so it gets less time.
            wait = CLOSE_WAIT if self.hooks.tls is None else TLS_CLOSE_WAIT
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(up), wait)
        finally:
            if up is not None:
                up.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await up
            self.upstream.close()
            # Also when shutdown cancels this connection: its open turn is complete by then.
            for turn in self.tracker.close():
                await self._store(turn)

    async def _pump_client(self) -> None:
        while True:
            data = await self.client.read()
            now = time.time()
            if not data:
                self.upstream.write_eof()
                return
            self.upstream.write(data)
            for turn in self.tracker.client(data, now):
                await self._store(turn)
            await self.upstream.drain()

    async def _pump_server(self) -> None:
        while True:
            data = await self.upstream.read()
            now = time.time()
            if not data:
                self.tracker.server_closed(now)
                self.client.write_eof()
                return
            self.client.write(data)
            self.tracker.server(data, now)
            await self.client.drain()

    async def _store(self, turn: Exchange) -> None:
        attr = turn.tag
        assert isinstance(attr, Attribution)
        raw = turn.raw if isinstance(turn.raw, bytes | BlobRef) else None
        if raw is not None:
            raw = self._redacted(turn, raw)
        await self.hooks.recorder.add_wire_mock(
            self.dep,
            PROTOCOL,
            attr,
            turn.request,
            WireResponse(turn.response_data(), raw),
            started=turn.started,
            duration=max(0.0, turn.ended - turn.started),
        )

    def _redacted(self, turn: Exchange, raw: bytes | BlobRef) -> bytes | BlobRef:
        """A large answer's bytes with their credentials out (the tracker did the rest)."""
        secrets = self.hooks.recorder.secrets
        if isinstance(raw, bytes):
            data = secrets.redact_bytes(raw)
            if data is not raw:
                turn.raw_replaced(data, len(data), data)
            return data
        blob = secrets.redact_blob(raw)
        if blob is not raw:
            with open(blob.path, "rb") as fh:
                turn.raw_replaced(blob, blob.size, fh.read(HEAD))
        return blob


# -- replay -------------------------------------------------------------------------------------


class TcpMockServer:
    """Answers a ``protocol: tcp`` dependency (and ``auto`` connections that are not parsed)
    from the recordings during replay; ``recorded`` is every mock of the set."""

    def __init__(
        self,
        dep: DepConfig,
        index: MockIndex,
        recorded: Iterable[Mock],
        *,
        latency: str = "recorded",
        on_miss: Callable[[Miss], None] | None = None,
        secrets: Secrets | None = None,
    ) -> None:
        if latency not in LATENCIES:
            raise ValueError(f"latency must be one of {', '.join(LATENCIES)}, not {latency!r}")
        self.dep = dep
        self.index = index
        self.latency = latency
        self.on_miss = on_miss
        self.secrets = secrets or Secrets()
        # Recorded client bytes with their credentials back (what the app sends), and the
        # recorded form of each one that differs (what the index knows).
        sends: list[Send] = []
        self._recorded: dict[Send, Send] = {}
        for mock in recorded:
            request = mock.request
            if mock.dep == dep.name and mock.protocol == PROTOCOL:
                assert isinstance(request, WireRequest)
                with contextlib.suppress(PlainError):
                    send = send_of(request.data)
                    live = self._reveal(send)
                    if live != send:
                        self._recorded[live] = send
                    sends.append(live)
        self.sends = Sends(sends)
        self.answers: dict[str, Answer] = {}
        self._raws: dict[str, bytes | BlobRef] = {}

    def _reveal(self, send: Send) -> Send:
        if isinstance(send, Digest):
            head = self.secrets.reveal_bytes(send.head)
            return send if head == send.head else Digest(send.sha256, send.size, head)
        return self.secrets.reveal_bytes(send)

    def request_for(self, send: Send) -> WireRequest:
        """The request to look up for client bytes that matched ``send`` (a revealed one)."""
        return request_for(self._recorded.get(send, send))

    def raw_for(self, mock_id: str, raw: bytes | BlobRef) -> bytes | BlobRef:
        """A large recorded answer with its credentials revealed, looked at once per mock."""
        found = self._raws.get(mock_id)
        if found is None:
            found = self._raws[mock_id] = self.secrets.reveal_raw(raw)
        return found

    def answer_for(self, response: WireResponse) -> Answer:
        """The chunks of a recorded answer, credentials revealed (a value split between two
        chunks too)."""
        answer = answer_of(response.data, raw=response.raw is not None)
        data = [chunk for _, chunk in answer.chunks]
        if not self.secrets.values or not data or not all(isinstance(d, bytes) for d in data):
            return answer
        pieces = rewrite_stream(cast(list[bytes], data), self.secrets.reveal_bytes)
        if pieces is None:
            return answer
        chunks = tuple(
            (delay, piece) for (delay, _), piece in zip(answer.chunks, pieces, strict=True)
        )
        return Answer(chunks, answer.close)

    @property
    def has_opening(self) -> bool:
        """Whether the server spoke first on some recorded connection."""
        return self.sends.has_opening

    async def serve(self, client: ByteStream) -> None:
        await self.serve_connection(client, greet=self.has_opening)

    async def serve_connection(self, client: ByteStream, *, greet: bool) -> None:
        await _MockConnection(self, client).run(greet)


class _MockConnection:
    def __init__(self, server: TcpMockServer, client: ByteStream) -> None:
        self.server = server
        self.dep = server.dep.name
        self.client = client
        self.buffer = bytearray()
        self.arrived = asyncio.Event()
        self.eof = False

    async def run(self, greet: bool) -> None:
        reader = asyncio.create_task(self._read())
        try:
            if greet and not await self._answer(b""):
                return
            await self._loop()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _read(self) -> None:
        while True:
            data = await self.client.read()
            if not data:
                self.eof = True
                self.arrived.set()
                return
            self.buffer += data
            self.arrived.set()

    async def _wait(self, timeout: float | None) -> bool:
        """Wait for more client bytes (or the end); False when ``timeout`` passed first."""
        self.arrived.clear()
        if self.eof:
            return True
        try:
            await asyncio.wait_for(self.arrived.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def _loop(self) -> None:
        while True:
            if not self.buffer:
                if self.eof:
                    return
                await self._wait(None)
                continue
            size = len(self.buffer)
            match = self.server.sends.match(bytes(self.buffer))
            if match.partial and not self.eof:
                if await self._wait(EXTEND_WAIT if match.complete else STALL_WAIT):
                    continue
                if len(self.buffer) != size:
                    continue
                if not match.complete:
                    log.info(
                        "%s: the client stopped after %d bytes, in the middle of every recorded "
                        "turn that begins with them",
                        self.dep,
                        size,
                    )
            if not match.complete:
                self._miss()
                return
            if not await self._answer_longest(match):
                return

    async def _answer_longest(self, match: Match) -> bool:
        index = self.server.index
        for send in match.complete:
            found = index.lookup(self.dep, self.server.request_for(send), optional=True)
            if isinstance(found, Mock):
                del self.buffer[: _size(send)]
                return await self._send(found)
        # Every recording this could be was used up or belongs to another test: explained.
        found = index.lookup(self.dep, self.server.request_for(match.complete[0]))
        assert isinstance(found, Miss)
        self._report(found)
        return False

    async def _answer(self, send: bytes) -> bool:
        found = self.server.index.lookup(self.dep, request_for(send))
        if isinstance(found, Miss):
            self._report(found)
            return False
        return await self._send(found)

    async def _send(self, mock: Mock) -> bool:
        """Send ``mock``'s answer; False when the connection ends with it."""
        response = mock.response
        if not isinstance(response, WireResponse):
            log.info("%s: %s has no answer recorded; closing", self.dep, mock.id)
            return False
        answer = self.server.answers.get(mock.id)
        if answer is None:
            try:
                answer = self.server.answer_for(response)
            except PlainError as exc:
                if response.raw is None:
                    log.warning("%s: recorded answer %s is invalid: %s", self.dep, mock.id, exc)
                    return False
                size = len(response.raw) if isinstance(response.raw, bytes) else response.raw.size
                answer = Answer(((0.0, size),))
            self.server.answers[mock.id] = answer
        paced = self.server.latency == "recorded"
        if response.raw is not None:
            await self._send_raw(answer, self.server.raw_for(mock.id, response.raw), paced)
        else:
            for delay, data in answer.chunks:
                if paced and delay > 0:
                    await self.client.drain()
                    await asyncio.sleep(delay)
                assert isinstance(data, bytes)
                self.client.write(data)
        await self.client.drain()
        if answer.close:
            self.client.write_eof()
            return False
        return True

    async def _send_raw(self, answer: Answer, raw: bytes | BlobRef, paced: bool) -> None:
        if isinstance(raw, bytes):
            at = 0
            for delay, size in answer.chunks:
                assert isinstance(size, int)
                if paced and delay > 0:
                    await self.client.drain()
                    await asyncio.sleep(delay)
                self.client.write(raw[at : at + size])
                at += size
            if at < len(raw):
                self.client.write(raw[at:])
            return
        with open(raw.path, "rb") as fh:
            for delay, size in answer.chunks:
                assert isinstance(size, int)
                if paced and delay > 0:
                    await self.client.drain()
                    await asyncio.sleep(delay)
                left = size
                while left > 0 and (data := fh.read(min(left, READ_SIZE))):
                    self.client.write(data)
                    left -= len(data)
                    await self.client.drain()
            while data := fh.read(READ_SIZE):
                self.client.write(data)
                await self.client.drain()

    def _miss(self) -> None:
        # Shown in the report: a credential in the app's bytes is redacted there too.
        live = self.server.secrets.redact_live_bytes(bytes(self.buffer))
        found = self.server.index.lookup(self.dep, request_for(live))
        if isinstance(found, Miss):
            self._report(found)

    def _report(self, miss: Miss) -> None:
        closest = ""
        if miss.candidates:
            best = miss.candidates[0]
            closest = f"; closest recording {best.mock_id}: " + "; ".join(best.differences)
        log.info(
            "%s: no recorded turn for %s%s; closing the connection",
            self.dep,
            miss.request,
            closest,
        )
        if self.server.on_miss is not None:
            self.server.on_miss(miss)


def _size(send: Send) -> int:
    return len(send) if isinstance(send, bytes) else send.size
