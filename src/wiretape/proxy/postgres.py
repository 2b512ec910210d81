"""PostgreSQL: the record proxy in front of a real server, and the mock server for replay.

Record (``PgRecordHooks``): each client connection gets its own upstream connection. Bytes are
forwarded as they arrive in both directions and only then parsed, as frames once authentication
is over (``protocols.postgres.frames``: a message seen before is known by its bytes); the
``Tracker`` pairs them into exchanges, which become mocks. Authentication passes through to the
real server and is never stored: the connection's start-up is kept as a reusable session mock
holding only the server's ParameterStatus, BackendKeyData and ReadyForQuery. A client's
SSLRequest is answered by wiretape itself (TLS with the wiretape CA, or ``N`` when
``client_tls: decline``); toward the server, TLS follows ``upstream_tls``. If a message cannot be
parsed, the failure is logged and the connection carries on as a raw pipe; exchanges completed
before it are kept.

Replay (``PgMockServer``): any credentials are accepted (AuthenticationOk), then the recorded
start-up messages are sent. Each batch of client messages is looked up in the ``MockIndex`` with
the same key the recording computed, and the recorded server messages are sent back. The key is
put together from the key parts of the batch's frames; the stored steps are built only when the
exact key misses (to look again with the loose key and to explain a miss). A miss is an
ErrorResponse with SQLSTATE ``WT001`` naming the statement and the closest recording; malformed
bytes get SQLSTATE ``08P01`` and the connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import struct
import time
from typing import Any

from wiretape.config import DepConfig
from wiretape.errors import ProtocolError
from wiretape.match.index import MockIndex
from wiretape.model import BlobRef, LinkKind, Miss, WireRequest, WireResponse
from wiretape.protocols.postgres.codec import (
    BackendParser,
    FrontendParser,
    NeedData,
    encode,
)
from wiretape.protocols.postgres.exchange import (
    ENDS_BATCH,
    SYNCS,
    ClientStep,
    Exchange,
    Tracker,
    decode_after,
    decode_messages,
    startup_request,
    with_request_noise,
)
from wiretape.protocols.postgres.exchange import request_for as pg_request
from wiretape.protocols.postgres.frames import ClientFrames, ServerFrames, encode_answer
from wiretape.protocols.postgres.messages import (
    AuthenticationOk,
    AuthenticationSASL,
    BackendKeyData,
    BackendMessage,
    CancelRequest,
    ErrorResponse,
    FrontendMessage,
    GSSENCRequest,
    NegotiateProtocolVersion,
    ParameterStatus,
    ReadyForQuery,
    SSLRequest,
    StartupMessage,
    TransactionStatus,
)
from wiretape.proxy.streams import (
    READ_SIZE,
    ByteStream,
    open_stream,
    serve_inline,
    terminate_app_tls,
)
from wiretape.proxy.tls import CertificateAuthority
from wiretape.runner.recorder import Attribution, Recorder

__all__ = ["PgMockServer", "PgRecordHooks"]

log = logging.getLogger("wiretape.postgres")

PROTOCOL = "postgres"
MISS_SQLSTATE = "WT001"
PROTOCOL_VIOLATION = "08P01"
LARGE_MESSAGES = 2000  # a response with more messages is stored as raw bytes in bodies/
PREVIEW_MESSAGES = 20
SSL_REQUEST = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"
_TERMINATE = ord("X")
_PASSWORD = ord("p")  # a password, SASL or GSSAPI message
_NEED_DATA = object()  # what the mock server's _advance returns: more bytes are needed
_ENDED = object()  # ... the client sent Terminate
_FLUSH_KEY = ("flush",)


def error_message(code: str, message: str, detail: str = "") -> bytes:
    fields = [("S", "ERROR"), ("V", "ERROR"), ("C", code), ("M", message)]
    if detail:
        fields.append(("D", detail))
    return encode(ErrorResponse(tuple(fields)))


# -- record -----------------------------------------------------------------------------------


class PgRecordHooks:
    """Record proxy for one ``protocol: postgres`` dependency."""

    def __init__(
        self,
        recorder: Recorder,
        dep: DepConfig,
        *,
        ca: CertificateAuthority | None,
        upstream_tls: ssl.SSLContext,
    ) -> None:
        self.recorder = recorder
        self.dep = dep
        self.ca = ca
        self.upstream_tls = upstream_tls
        self.client_frames = ClientFrames()
        self.server_frames = ServerFrames()

    async def serve(self, client: ByteStream) -> None:
        await _RecordConnection(self, client).run()


class _RecordConnection:
    def __init__(self, hooks: PgRecordHooks, client: ByteStream) -> None:
        self.hooks = hooks
        self.dep = hooks.dep.name
        self.client = client
        self.upstream: ByteStream | None = None
        self.frontend = FrontendParser(max_message_size=hooks.dep.max_message_size)
        self.backend = BackendParser(max_message_size=hooks.dep.max_message_size)
        self.tracker = Tracker(new_tag=hooks.recorder.attribute_now)
        self.parsing = True
        self.startup: StartupMessage | None = None
        self.startup_started = 0.0
        self.startup_messages: list[BackendMessage] = []
        self.ready = False  # authentication finished; the tracker takes over
        self.raw = bytearray()  # what the client sent during start-up
        self.client_tls = False
        self.server_raw = bytearray()  # what the server sent during authentication
        self.pending: list[Exchange] = []
        self.tags: dict[int, object] = {}

    async def run(self) -> None:
        try:
            if not await self._start():
                return
            assert self.upstream is not None
            up = asyncio.create_task(self._pump_server(self.upstream))
            try:
                await self._pump_client(self.upstream)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(up), 5)
            finally:
                up.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await up
            for exchange in self.tracker.close():
                await self._store(exchange)
        finally:
            if self.upstream is not None:
                self.upstream.close()

    # start-up: TLS requests are answered here; the StartupMessage opens the upstream

    async def _start(self) -> bool:
        while True:
            message = await self._next_client_message()
            if message is None:
                return False
            if isinstance(message, SSLRequest):
                accept = self.hooks.dep.client_tls == "accept" and self.hooks.ca is not None
                self.client.write(b"S" if accept else b"N")
                await self.client.drain()
                self.frontend.ssl_answered(b"S" if accept else b"N")
                if accept:
                    assert self.hooks.ca is not None
                    context = self.hooks.ca.loopback_context()
                    tls = await terminate_app_tls(self.client, context, b"", dep=self.dep, log=log)
                    if tls is None:
                        return False
                    self.client = tls
                    self.client_tls = True
                self.raw = bytearray()
                continue
            if isinstance(message, GSSENCRequest):
                self.client.write(b"N")
                self.frontend.ssl_answered(b"N")
                continue
            if isinstance(message, CancelRequest):
                await self._forward_cancel(message)
                return False
            if isinstance(message, StartupMessage):
                self.startup = message
                self.startup_started = time.time()
                upstream = await self._connect()
                if upstream is None:
                    return False
                self.upstream = upstream
                # Bytes the client sent right after its StartupMessage are forwarded as they came.
                rest = self.frontend.buffered
                tail = bytes(self.raw[len(self.raw) - rest :]) if rest else b""
                upstream.write(encode(message) + tail)
                self.raw = bytearray()
                return True
            self.client.write(
                error_message(PROTOCOL_VIOLATION, f"unexpected {type(message).__name__} at start")
            )
            return False

    async def _next_client_message(self) -> FrontendMessage | None:
        while True:
            try:
                event = self.frontend.next_event()
            except ProtocolError as exc:
                log.warning("%s: cannot parse the client's start-up: %s", self.dep, exc)
                self.client.write(error_message(PROTOCOL_VIOLATION, f"wiretape: {exc.message}"))
                return None
            if not isinstance(event, NeedData):
                return event
            data = await self.client.read()
            if not data:
                return None
            self.raw += data
            try:
                self.frontend.feed(data)
            except ProtocolError:
                continue

    async def _connect(self) -> ByteStream | None:
        dep = self.hooks.dep
        try:
            stream = await open_stream(dep.upstream_host, dep.upstream_port)
        except (TimeoutError, OSError) as exc:
            self.client.write(
                error_message("08001", f"wiretape: cannot reach {dep.upstream}: {exc}")
            )
            return None
        if dep.upstream_tls == "disable" or (dep.upstream_tls == "prefer" and self.client_tls):
            # SCRAM channel binding ties the client's proof to the certificate the client sees,
            # which is wiretape's; over a second TLS connection the server would reject it. With
            # TLS on the app's side, "prefer" therefore reaches the server in plain TCP.
            return stream
        stream.write(SSL_REQUEST)
        answer = await stream.read()
        if answer == b"S":
            try:
                await stream.start_tls(self.hooks.upstream_tls, dep.upstream_host)
            except (ssl.SSLError, OSError) as exc:
                stream.close()
                self.client.write(
                    error_message("08001", f"wiretape: TLS to {dep.upstream} failed: {exc}")
                )
                return None
            return stream
        if answer == b"N" and dep.upstream_tls == "prefer":
            return stream
        stream.close()
        self.client.write(
            error_message(
                "08001",
                f"wiretape: {dep.upstream} does not accept TLS, and deps.{dep.name}.upstream_tls "
                "is require",
            )
        )
        return None

    async def _forward_cancel(self, message: CancelRequest) -> None:
        dep = self.hooks.dep
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            stream = await open_stream(dep.upstream_host, dep.upstream_port)
            stream.write(encode(message))
            await stream.drain()
            await stream.read()
            stream.close()

    # the two directions

    async def _pump_client(self, upstream: ByteStream) -> None:
        if self.frontend.buffered:
            self._parse_client(b"")  # already forwarded with the StartupMessage
        while True:
            data = await self.client.read()
            if not data:
                upstream.write_eof()
                return
            upstream.write(data)
            if self.parsing:
                self._parse_client(data)
            await upstream.drain()

    def _parse_client(self, data: bytes) -> None:
        frontend = self.frontend
        frames = self.hooks.client_frames
        tracker = self.tracker
        now = time.time()
        try:
            frontend.feed(data)
            while True:
                at, split = frontend.frames()
                if not split:
                    return
                for frame in split:
                    if not self.ready or frame[0] == _TERMINATE:
                        frontend.decode_frame(frame, at)  # checked, not recorded
                    else:
                        info = frames.step(frame, at, tracker.statements, frontend.decode_frame)
                        exchanges = tracker.add_client(info, now)
                        if exchanges:
                            self.pending.extend(exchanges)
                    at += len(frame)
        except ProtocolError as exc:
            self._give_up("client", exc)

    async def _pump_server(self, upstream: ByteStream) -> None:
        while not self.ready and self.parsing:
            # Authentication: messages are forwarded one by one, re-encoded, so that the SASL
            # mechanisms can be adjusted (see _on_auth_message).
            data = await upstream.read()
            if not data:
                self.client.write_eof()
                return
            self._auth_from_server(data)
            await self.client.drain()
            await self._flush()
        while True:
            data = await upstream.read()
            if not data:
                self.client.write_eof()
                break
            self.client.write(data)
            if self.parsing:
                self._parse_server(data)
            await self.client.drain()
            await self._flush()
        await self._flush()

    def _auth_from_server(self, data: bytes) -> None:
        self.server_raw += data
        try:
            self.backend.feed(data)
            while not self.ready:
                event = self.backend.next_event()
                if isinstance(event, NeedData):
                    return
                if isinstance(event, AuthenticationSASL) and not self.client_tls:
                    # A client without TLS refuses a server that offers channel binding
                    # (SCRAM-SHA-256-PLUS), which the server does when its own connection, from
                    # wiretape, uses TLS. The plain mechanisms are what the client can use.
                    plain = tuple(m for m in event.mechanisms if not m.endswith("-PLUS"))
                    event = AuthenticationSASL(plain or event.mechanisms)
                self.client.write(encode(event))
                self._on_server(event)
        except ProtocolError as exc:
            self._give_up("server", exc)
        if self.ready or not self.parsing:
            # Whatever follows the start-up (or could not be parsed) goes through as it came.
            tail = bytes(self.server_raw[self.backend.consumed :])
            self.server_raw = bytearray()
            if tail:
                self.client.write(tail)
                if self.parsing:
                    self._parse_server(b"")

    def _parse_server(self, data: bytes) -> None:
        """What the server sent once authentication is over."""
        backend = self.backend
        frames = self.hooks.server_frames
        tracker = self.tracker
        now = time.time()
        try:
            backend.feed(data)
            while True:
                at, split = backend.frames()
                if not split:
                    return
                for frame in split:
                    answer = frames.answer(frame, at, backend.decode_frame)
                    exchanges = tracker.add_server(frame[0], answer, now)
                    if exchanges:
                        self.pending.extend(exchanges)
                    at += len(frame)
        except ProtocolError as exc:
            self._give_up("server", exc)

    def _on_server(self, message: BackendMessage) -> None:
        """A server message during authentication."""
        self.frontend.expect_auth(message)
        if isinstance(message, AuthenticationOk):
            self.startup_messages = []
        elif isinstance(message, ParameterStatus | BackendKeyData | NegotiateProtocolVersion):
            self.startup_messages.append(message)
        elif isinstance(message, ReadyForQuery):
            self.startup_messages.append(message)
            self.ready = True
            self._store_startup()
        elif isinstance(message, ErrorResponse):
            self.startup_messages = []
            text = " ".join(value for _, value in message.fields)
            if "channel binding" in text:
                log.warning(
                    "%s: the server rejected SCRAM channel binding: it cannot pass through "
                    "wiretape when both the app and the server use TLS; set "
                    "deps.%s.upstream_tls to prefer or disable, or client_tls to decline",
                    self.dep,
                    self.dep,
                )

    async def _flush(self) -> None:
        while self.pending:
            await self._store(self.pending.pop(0))

    def _give_up(self, side: str, exc: ProtocolError) -> None:
        log.warning(
            "%s: cannot parse the %s's messages (%s); passing this connection through "
            "unrecorded from here on",
            self.dep,
            side,
            exc,
        )
        self.parsing = False

    def _store_startup(self) -> None:
        assert self.startup is not None
        exchange = Exchange(
            startup_request(self.startup),
            self.startup_messages,
            self.startup_started,
            time.time(),
            tag=Attribution(None, LinkKind.SESSION),
        )
        self.pending.append(exchange)

    async def _store(self, exchange: Exchange) -> None:
        recorder = self.hooks.recorder
        attr = exchange.tag
        assert isinstance(attr, Attribution)
        await recorder.add_wire_mock(
            self.dep,
            PROTOCOL,
            attr,
            exchange.request,
            self._response(exchange),
            started=exchange.started,
            duration=max(0.0, exchange.ended - exchange.started),
        )

    def _response(self, exchange: Exchange) -> WireResponse:
        if exchange.message_count <= LARGE_MESSAGES:
            return WireResponse(exchange.response_data())
        sink = self.hooks.recorder.new_sink()
        for frame in exchange.wire():
            sink.write(frame)
        preview: dict[str, Any] = {
            "messages": exchange.docs(PREVIEW_MESSAGES),
            "total": exchange.message_count,
        }
        return WireResponse(preview, sink.finish())


# -- replay -----------------------------------------------------------------------------------

_DEFAULT_STATUS = (
    ("server_version", "15.0 (wiretape)"),
    ("server_encoding", "UTF8"),
    ("client_encoding", "UTF8"),
    ("DateStyle", "ISO, MDY"),
    ("IntervalStyle", "postgres"),
    ("integer_datetimes", "on"),
    ("standard_conforming_strings", "on"),
    ("TimeZone", "UTC"),
    ("is_superuser", "off"),
)


class PgMockServer:
    """Answers a ``protocol: postgres`` dependency from the recordings during replay."""

    def __init__(
        self,
        dep: DepConfig,
        index: MockIndex,
        *,
        ca: CertificateAuthority | None,
    ) -> None:
        self.dep = dep
        self.index = index
        self.ca = ca
        # Encoded answers by mock id: a recording is encoded once, however often it answers,
        # and before the first client connects, so serving only looks the bytes up.
        self.encoded: dict[str, tuple[bytes, TransactionStatus | None]] = {}
        self.invalid: dict[str, str] = {}  # why a recorded answer cannot be sent, by mock id
        self.frames = ClientFrames()
        for mock in index.mocks_of(dep.name):
            response = mock.response
            if isinstance(response, WireResponse) and response.raw is None:
                self.encode(mock.id, response.data)

    def encode(self, mock_id: str, data: Any) -> tuple[bytes, TransactionStatus | None] | None:
        """The answer of ``mock_id`` as bytes, kept; None when it cannot be sent (see
        ``invalid``), as after a hand edit that broke it."""
        try:
            encoded = self.encoded[mock_id] = encode_answer(data)
        except (ValueError, TypeError, struct.error, OverflowError) as exc:
            self.invalid[mock_id] = str(exc)
            return None
        return encoded

    async def serve(self, client: ByteStream) -> None:
        await _MockConnection(self, client).run()


class _MockConnection:
    def __init__(self, server: PgMockServer, client: ByteStream) -> None:
        self.server = server
        self.dep = server.dep.name
        self.client = client
        self.parser = FrontendParser(max_message_size=server.dep.max_message_size)
        self.statements: dict[str, str] = {}
        self.batch: list[ClientStep] = []
        self.typed = False  # the StartupMessage is answered: typed messages follow, as frames
        self.status = TransactionStatus.IDLE
        self.failed = False  # a miss in the extended protocol: skip to the next Sync
        self.pushes: list[asyncio.Task[None]] = []
        self.split: list[bytes] = []  # the frames being answered, the next one's index in
        self.next = 0  # them and its stream offset
        self.at = 0
        self.pending: object = None  # what stopped serving inline (see _advance)

    async def run(self) -> None:
        try:
            await self._loop()
        finally:
            for task in self.pushes:
                task.cancel()

    async def _loop(self) -> None:
        if await self._start():
            await self._serve_batches()

    async def _start(self) -> bool:
        """The connection start, up to the answered StartupMessage; False when it ends there."""
        parser = self.parser
        while not self.typed:
            try:
                event = parser.next_event()
            except ProtocolError as exc:
                await self._malformed(exc)
                return False
            if isinstance(event, NeedData):
                if not await self._receive():
                    return False
            elif not await self._on_message(event):
                await self.client.drain()
                return False
        return True

    async def _serve_batches(self) -> None:
        """Typed messages, split into frames; each batch is answered when it ends."""
        client = self.client
        while True:
            action = self._advance()
            if action is _NEED_DATA:
                # Batches whose answers are plain bytes are answered as their frames arrive,
                # with no task switch; the rest (stored bodies, the end, errors) come back here.
                if await serve_inline(client, self._feed):
                    action = self.pending
                    self.pending = None
                    if action is None:
                        continue
                elif await self._receive():
                    continue
                else:
                    return
            if action is _ENDED:
                await self.client.drain()
                return
            if isinstance(action, ProtocolError):
                await self._malformed(action)
                return
            assert isinstance(action, BlobRef)
            await self._send_blob(action)

    def _feed(self, data: bytes) -> bool:
        """Bytes received while serving inline: answer the batches they end, and say whether to
        go on inline (False leaves what needs the task in ``pending``)."""
        with contextlib.suppress(ProtocolError):  # raised again by frames()
            self.parser.feed(data)
        action = self._advance()
        if action is _NEED_DATA:
            return True
        self.pending = action
        return False

    def _advance(self) -> object:
        """Step through the frames buffered and answer each batch they end, up to the first
        thing that needs more: _NEED_DATA, _ENDED (Terminate), the malformed bytes'
        ProtocolError, or a stored answer's body (``BlobRef``) to stream."""
        parser = self.parser
        frames = self.server.frames
        statements = self.statements
        split, i, at = self.split, self.next, self.at
        try:
            while True:
                while i < len(split):
                    frame = split[i]
                    i += 1
                    tag = frame[0]
                    if tag == _TERMINATE:
                        self.split, self.next, self.at = split, i, at
                        return _ENDED
                    at += len(frame)
                    if tag == _PASSWORD:  # any credentials are accepted
                        continue
                    info = frames.step(frame, at - len(frame), statements, parser.decode_frame)
                    self.batch.append(info)
                    if info.prepared is not None:
                        statements[info.prepared[0]] = info.prepared[1]
                    if info.flags & ENDS_BATCH:
                        batch, self.batch = self.batch, []
                        blob = self._answer(batch, bool(info.flags & SYNCS))
                        if blob is not None:
                            self.split, self.next, self.at = split, i, at
                            return blob
                at, split = parser.frames()
                i = 0
                if not split:
                    self.split, self.next, self.at = split, i, at
                    return _NEED_DATA
        except ProtocolError as exc:
            return exc

    async def _receive(self) -> bool:
        await self.client.drain()
        data = await self.client.read()
        if not data:
            return False
        with contextlib.suppress(ProtocolError):
            self.parser.feed(data)
        return True

    async def _malformed(self, exc: ProtocolError) -> None:
        log.info("%s: malformed client bytes: %s", self.dep, exc)
        self.client.write(
            error_message(PROTOCOL_VIOLATION, f"wiretape: malformed message: {exc.message}")
        )
        await self.client.drain()

    async def _on_message(self, m: FrontendMessage) -> bool:
        """A message of the connection start."""
        if isinstance(m, SSLRequest):
            accept = self.server.dep.client_tls == "accept" and self.server.ca is not None
            self.client.write(b"S" if accept else b"N")
            await self.client.drain()
            self.parser.ssl_answered(b"S" if accept else b"N")
            if accept:
                assert self.server.ca is not None
                context = self.server.ca.loopback_context()
                dep = self.server.dep.name
                tls = await terminate_app_tls(self.client, context, b"", dep=dep, log=log)
                if tls is None:
                    return False
                self.client = tls
            return True
        if isinstance(m, GSSENCRequest):
            self.client.write(b"N")
            self.parser.ssl_answered(b"N")
            return True
        if isinstance(m, CancelRequest):
            return False
        if isinstance(m, StartupMessage):
            self._answer_startup(m)
            self.typed = True
            return True
        raise AssertionError(f"{type(m).__name__} is a typed message, read as a frame")

    def _answer_startup(self, m: StartupMessage) -> None:
        self.client.write(encode(AuthenticationOk()))
        found = self.server.index.lookup(self.dep, startup_request(m), optional=True)
        if isinstance(found, Miss) or not isinstance(found.response, WireResponse):
            for name, value in _DEFAULT_STATUS:
                self.client.write(encode(ParameterStatus(name, value)))
            key = BackendKeyData(os.getpid(), os.urandom(4))
            self.client.write(encode(key) + encode(ReadyForQuery(TransactionStatus.IDLE)))
            return
        for message in decode_messages(found.response.data):
            self.client.write(encode(message))

    def _answer(self, batch: list[ClientStep], syncs: bool) -> BlobRef | None:
        """Answer a batch; a stored body to stream is returned for the task to send."""
        if self.failed:
            if syncs:
                self.failed = False
                self._ready(TransactionStatus.FAILED if self._in_tx else TransactionStatus.IDLE)
            return None
        if len(batch) == 1 and batch[0].key == _FLUSH_KEY:
            return None
        index = self.server.index
        noise = self.server.dep.request_noise
        request: WireRequest
        if noise:
            steps = [info.stored() for info in batch]
            request = with_request_noise(pg_request(steps, exact_only=True), noise)
        else:
            # The exact key is all a hit needs; the steps are built only for a miss.
            request = WireRequest("", None, tuple([info.key for info in batch]))
        found = index.lookup(self.dep, request, optional=True)
        if isinstance(found, Miss):
            # Not recorded as is: look again with the loose key, and explain a real miss.
            steps = [info.stored() for info in batch]
            request = with_request_noise(pg_request(steps), noise)
            found = index.lookup(self.dep, request)
            if isinstance(found, Miss):
                self._miss(found, request, syncs)
                return None
        response = found.response
        if not isinstance(response, WireResponse):
            self.client.write(
                error_message(MISS_SQLSTATE, f"wiretape: {request.summary} was recorded failing")
            )
            if syncs:
                self._ready(self.status)
            return None
        if isinstance(response.raw, BlobRef):
            return response.raw
        if response.raw is not None:
            self.client.write(response.raw)
            self._status_from_tail(response.raw)
            return None
        cached = self.server.encoded.get(found.id)
        if cached is None:
            cached = self.server.encode(found.id, response.data)
            if cached is None:
                problem = self.server.invalid[found.id]
                self.client.write(
                    error_message(
                        MISS_SQLSTATE,
                        f"wiretape: the recorded answer of {found.id} cannot be sent: {problem}",
                    )
                )
                if syncs:
                    self._ready(self.status)
                return None
        self.client.write(cached[0])
        if cached[1] is not None:
            self.status = cached[1]
        if isinstance(response.data, dict) and response.data.get("after"):
            after = decode_after(response.data)
            self.pushes.append(asyncio.create_task(self._push(after)))
        return None

    @property
    def _in_tx(self) -> bool:
        return self.status is not TransactionStatus.IDLE

    def _miss(self, miss: Miss, request: WireRequest, syncs: bool) -> None:
        closest = ""
        if miss.candidates:
            best = miss.candidates[0]
            closest = f"closest recording {best.mock_id}: " + "; ".join(best.differences)
        reason = f"; {miss.reason}" if miss.reason else ""
        self.client.write(
            error_message(
                MISS_SQLSTATE,
                f"wiretape: no recorded answer for {request.summary}",
                (closest + reason).strip("; "),
            )
        )
        if syncs:
            self._ready(TransactionStatus.FAILED if self._in_tx else TransactionStatus.IDLE)
        else:
            self.failed = True

    def _ready(self, status: TransactionStatus) -> None:
        self.status = status
        self.client.write(encode(ReadyForQuery(status)))

    async def _send_blob(self, raw: BlobRef) -> None:
        tail = b""
        with open(raw.path, "rb") as fh:
            while chunk := fh.read(READ_SIZE):
                self.client.write(chunk)
                tail = (tail + chunk)[-6:]
                await self.client.drain()
        self._status_from_tail(tail)

    def _status_from_tail(self, data: bytes) -> None:
        # A recorded answer that ends with ReadyForQuery: Z, length 5, status byte.
        if len(data) >= 6 and data[-6:-1] == b"Z\x00\x00\x00\x05":
            with contextlib.suppress(ValueError):
                self.status = TransactionStatus(chr(data[-1]))

    async def _push(self, after: list[tuple[float, BackendMessage]]) -> None:
        # Each delay counts from the end of the recorded answer, not from the message before.
        start = asyncio.get_running_loop().time()
        for delay, message in after:
            wait = start + delay - asyncio.get_running_loop().time()
            if wait > 0:
                await asyncio.sleep(wait)
            self.client.write(encode(message))
            await self.client.drain()
