"""Redis: the record proxy in front of a real server, and the mock server for replay.

Record (``RedisRecordHooks``): each client connection gets its own upstream connection. Bytes are
forwarded as they arrive in both directions and only then parsed; the ``Tracker`` pairs commands
and server frames into exchanges, which become mocks linked to the test in flight when each
command was sent. Bulk strings longer than the parser's threshold are parsed as a stream: a large
argument is hashed as it passes, a large answer is written to a body spool (``bodies/``), so no
large value is held whole. Passwords never reach the set (``wiretape:secret``). If either side's
bytes cannot be parsed (or hold a bulk string longer than ``deps.NAME.max_message_size``), the
failure is logged and the connection carries on as a raw pipe; exchanges completed before it are
kept.

Replay (``RedisMockServer``): every command is looked up in the ``MockIndex`` with the key the
recording computed, and the recorded frames are sent back; a blocking command's answer waits its
recorded delay, and frames recorded as arriving later (pub/sub messages) are pushed at their
recorded pace, always before the answer to the client's next command, as they were recorded.
Credentials are accepted whatever they are: the password never takes part in the match. The
dependency's ``request_noise`` rules (command, argument positions) take those arguments out of
each live command's key; the recorded mocks in the index must be keyed the same way
(``with_request_noise``). A miss
answers ``-ERR wiretape: no recorded answer for ...`` naming the closest recording; malformed
bytes get ``-ERR wiretape: malformed ...`` and the connection is closed.

TLS (``rediss://``): an app whose first bytes begin a TLS handshake gets it terminated with the
wiretape CA on both sides (``deps.NAME.client_tls``); while recording, TLS toward the server
follows ``deps.NAME.upstream_tls``.

Both sides are built for many small commands: the connections of one dependency share the
events of small chunks already parsed (``RespParser(known=...)``) and the requests of commands
already seen (``RequestCache``); the mock server encodes each distinct small answer once and
writes the answers to one read at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from wiretape.config import DepConfig
from wiretape.errors import ProtocolError
from wiretape.match.index import MockIndex
from wiretape.model import BlobRef, Miss, Mock, WireRequest, WireResponse
from wiretape.protocols.redis import NEED_DATA, Command, Event, Kind, RespParser, encode_reply
from wiretape.protocols.redis_exchange import (
    LARGE_ARG,
    CommandAssembler,
    Exchange,
    RequestCache,
    Requests,
    Tracker,
    answer_of,
    name_of,
    with_request_noise,
)
from wiretape.protocols.wire import PlainError
from wiretape.proxy.streams import (
    READ_SIZE,
    ByteStream,
    open_stream,
    serve_inline,
    terminate_app_tls,
)
from wiretape.proxy.tls import CertificateAuthority, client_context
from wiretape.runner.recorder import Attribution, Recorder

__all__ = ["RedisMockServer", "RedisRecordHooks", "accept_tls", "error_reply", "starts_tls"]

log = logging.getLogger("wiretape.redis")

PROTOCOL = "redis"
ERROR_MAX = 1000
CLOSE_WAIT = 5.0  # seconds: how long the server may go on once the app has closed


def error_reply(message: str) -> bytes:
    """``-ERR <message>`` on one line (a simple error cannot hold CR or LF)."""
    text = " ".join(message.split())
    if len(text) > ERROR_MAX:
        text = text[: ERROR_MAX - 3] + "..."
    return b"-ERR " + text.encode("utf-8", "replace") + b"\r\n"


# -- record -------------------------------------------------------------------------------------


def starts_tls(first: bytes) -> bool:
    """Whether a client's first bytes begin a TLS handshake record (RESP never starts so)."""
    return first[:1] == b"\x16"


async def accept_tls(
    client: ByteStream, first: bytes, dep: DepConfig, ca: CertificateAuthority | None
) -> ByteStream | None:
    """Terminate the TLS that ``client`` began with ``first``, with the wiretape CA; None when
    the dependency declines it or the handshake fails (both logged)."""
    if ca is None or dep.client_tls != "accept":
        log.warning(
            "%s: the app opened TLS, and deps.%s.client_tls is %s; closing the connection",
            dep.name,
            dep.name,
            dep.client_tls,
        )
        return None
    return await terminate_app_tls(client, ca.loopback_context(), first, dep=dep.name, log=log)


class RedisRecordHooks:
    """Record proxy for one ``protocol: redis`` dependency.

    An app that opens TLS (``rediss://``) gets it terminated with the wiretape CA (``ca``);
    toward the server TLS follows ``deps.NAME.upstream_tls`` with the ``upstream_tls`` context:
    ``prefer`` uses it when the app does, ``require`` and ``verify-full`` always.
    """

    def __init__(
        self,
        recorder: Recorder,
        dep: DepConfig,
        *,
        ca: CertificateAuthority | None = None,
        upstream_tls: ssl.SSLContext | None = None,
    ) -> None:
        self.recorder = recorder
        self.dep = dep
        self.ca = ca
        self.upstream_tls = upstream_tls
        self.requests = RequestCache()
        self.known_commands: dict[bytes, tuple[Event, ...]] = {}  # see RespParser
        self.known_replies: dict[bytes, tuple[Event, ...]] = {}

    async def serve(self, client: ByteStream) -> None:
        first = await client.read()  # Redis clients speak first
        if not first:
            return
        client_tls = starts_tls(first)
        if client_tls:
            stream = await accept_tls(client, first, self.dep, self.ca)
            if stream is None:
                return
            client, first = stream, b""
        await _RecordConnection(self, client).run(first, client_tls)

    def upstream_context(self, client_tls: bool) -> ssl.SSLContext | None:
        mode = self.dep.upstream_tls
        if mode == "disable" or (mode == "prefer" and not client_tls):
            return None
        return self.upstream_tls or client_context(verify=mode == "verify-full")


class _RecordConnection:
    def __init__(self, hooks: RedisRecordHooks, client: ByteStream) -> None:
        self.hooks = hooks
        self.dep = hooks.dep.name
        self.client = client
        limit = hooks.dep.max_message_size
        self.commands = RespParser(
            Kind.COMMAND,
            stream_threshold=LARGE_ARG,
            max_bulk_length=limit,
            known=hooks.known_commands,
        )
        self.replies = RespParser(
            Kind.REPLY, stream_threshold=LARGE_ARG, max_bulk_length=limit, known=hooks.known_replies
        )
        self.assembler = CommandAssembler()
        self.tracker = Tracker(
            hooks.recorder.attribute_now, spool=hooks.recorder.new_sink, cache=hooks.requests
        )
        self.parsing = True
        self.client_ended = False
        self.pending: deque[Exchange] = deque()

    async def run(self, first: bytes = b"", client_tls: bool = False) -> None:
        """Relay the connection; ``first`` is the client's bytes already read."""
        dep = self.hooks.dep
        context = self.hooks.upstream_context(client_tls)
        try:
            upstream = await open_stream(
                dep.upstream_host,
                dep.upstream_port,
                tls=context,
                server_hostname=dep.upstream_host if context is not None else None,
            )
        except (TimeoutError, OSError) as exc:  # ssl.SSLError is an OSError
            log.warning("%s: cannot reach %s: %s", self.dep, dep.upstream, exc)
            self.client.write(error_reply(f"wiretape: cannot reach {dep.upstream}: {exc}"))
            await self.client.drain()
            return
        try:
            up = asyncio.create_task(self._pump_server(upstream))
            try:
                await self._pump_client(upstream, first)
                # The app is done: the server may still owe answers. Over plain TCP it saw the
                # end and closes; a TLS connection cannot be half-closed, so it is not waited
                # for past the last answer.
                self.client_ended = True
                if context is None or not self.parsing or self.tracker.awaiting:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(asyncio.shield(up), CLOSE_WAIT)
            finally:
                up.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await up
                # Also when shutdown cancels the connection: what it saw is complete by then.
                if self.parsing:
                    self.pending.extend(self.tracker.close(time.time()))
                await self._flush()
        finally:
            upstream.close()

    async def _pump_client(self, upstream: ByteStream, first: bytes) -> None:
        while True:
            if first:
                data, first = first, b""
            else:
                data = await self.client.read()
            now = time.time()
            if not data:
                upstream.write_eof()
                return
            upstream.write(data)
            if self.parsing:  # before any await, so a command is always seen before its answer
                self._parse(self.commands, data, now, "client")
            await upstream.drain()
            if self.pending:
                await self._flush()

    async def _pump_server(self, upstream: ByteStream) -> None:
        while True:
            data = await upstream.read()
            now = time.time()
            if not data:
                self.client.write_eof()
                return
            self.client.write(data)
            if self.parsing:
                self._parse(self.replies, data, now, "server")
            await self.client.drain()
            if self.pending:
                await self._flush()
            if self.client_ended and self.parsing and not self.tracker.awaiting:
                return

    def _parse(self, parser: RespParser, data: bytes, now: float, side: str) -> None:
        tracker = self.tracker
        pending = self.pending
        try:
            parser.feed(data)
            if side == "client":
                assembler = self.assembler
                while (event := parser.next_event()) is not NEED_DATA:
                    if type(event) is Command:
                        done = tracker.command(event.args, now)
                    else:
                        args = assembler.feed(event)
                        if args is None:
                            continue
                        done = tracker.command(args, now)
                    if done:
                        pending.extend(done)
            else:
                while (event := parser.next_event()) is not NEED_DATA:
                    done = tracker.server(event, now)
                    if done:
                        pending.extend(done)
        except ProtocolError as exc:
            self._give_up(side, exc)

    def _give_up(self, side: str, exc: ProtocolError) -> None:
        log.warning(
            "%s: cannot parse the %s's RESP (%s); passing this connection through unrecorded "
            "from here on",
            self.dep,
            side,
            exc,
        )
        self.parsing = False

    async def _flush(self) -> None:
        while self.pending:
            await self._store(self.pending.popleft())

    async def _store(self, exchange: Exchange) -> None:
        attr = exchange.tag
        assert isinstance(attr, Attribution)
        response: WireResponse | None = WireResponse(exchange.response_data(), raw=_raw(exchange))
        error = None
        if not exchange.answered:
            error = "the connection closed before the answer was complete"
            if not exchange.frames and exchange.raw is None:
                response = None
        await self.hooks.recorder.add_wire_mock(
            self.dep,
            PROTOCOL,
            attr,
            exchange.request,
            response,
            started=exchange.started,
            duration=max(0.0, exchange.ended - exchange.started),
            error=error,
        )


def _raw(exchange: Exchange) -> bytes | BlobRef | None:
    raw = exchange.raw
    return raw if isinstance(raw, bytes | BlobRef) else None


# -- replay -------------------------------------------------------------------------------------


class RedisMockServer:
    """Answers a ``protocol: redis`` dependency from the recordings during replay."""

    def __init__(
        self,
        dep: DepConfig,
        index: MockIndex,
        *,
        on_miss: Callable[[Miss], None] | None = None,
        ca: CertificateAuthority | None = None,
    ) -> None:
        self.dep = dep
        self.index = index
        self.ca = ca  # terminates the TLS of apps that open it (``rediss://``)
        self.noise = dep.request_noise
        self.on_miss = on_miss
        self.requests = RequestCache(self.noise)
        self.known: dict[bytes, tuple[Event, ...]] = {}  # see RespParser
        self._answers: dict[tuple[object, object], _Prepared] = {}
        # Every answer is prepared before the first client connects, by the identity of its
        # mock (the index keeps the mocks alive while this server serves): serving then looks
        # up one dict and touches neither the mock nor its stored form, which in a large set
        # lie scattered over the heap.
        self._prepared: dict[int, _Prepared | str | None] = {
            id(mock): self._prepare(mock) for mock in index.mocks_of(dep.name)
        }

    async def serve(self, client: ByteStream) -> None:
        first = await client.read()
        if not first:
            return
        if starts_tls(first):
            stream = await accept_tls(client, first, self.dep, self.ca)
            if stream is None:
                return
            client, first = stream, b""
        connection = _MockConnection(self, client)
        with contextlib.suppress(ProtocolError):  # raised again by next_event()
            connection.parser.feed(first)
        await connection.run()

    def prepared(self, mock: Mock) -> _Prepared | str | None:
        """``mock``'s answer as bytes (encoded once per distinct small answer, else once per
        mock), None when it was recorded without one, or why it cannot be sent."""
        try:
            return self._prepared[id(mock)]
        except KeyError:  # not one of the index's mocks of this dependency
            return self._prepare(mock)

    def _prepare(self, mock: Mock) -> _Prepared | str | None:
        plain = _plain_key(mock.response)
        if plain is not None:
            found = self._answers.get(plain)
            if found is not None:
                return found
            answer = _prepare(mock)
            if isinstance(answer, _Prepared):
                if len(self._answers) >= _ANSWERS:
                    del self._answers[next(iter(self._answers))]
                self._answers[plain] = answer
            return answer
        return _prepare(mock)


_UNSET = object()
_ANSWERS = 4096  # distinct small answers kept encoded
_PLAIN_MAX = 512  # longest answer text that is looked up by value


def _plain_key(response: object) -> tuple[object, object] | None:
    """A hashable form of a recorded answer that is one small scalar frame (``{reply: 'x'}``,
    ``{reply: {simple: OK}}``, ``{reply: 3}``...), equal for equal answers; None for others."""
    if type(response) is not WireResponse or response.raw is not None:
        return None
    data = response.data
    if type(data) is not dict or len(data) != 1:
        return None
    reply = data.get("reply", _UNSET)
    kind = type(reply)
    if kind is str:
        return (kind, reply) if len(reply) <= _PLAIN_MAX else None
    if kind is int or kind is bool or reply is None:
        return (kind, reply)
    if kind is dict and len(reply) == 1:
        ((name, text),) = reply.items()
        if type(name) is str and type(text) is str and len(text) <= _PLAIN_MAX:
            return (name, text)
    return None


@dataclass(frozen=True, slots=True)
class _Prepared:
    frames: bytes
    delay: float
    after: tuple[tuple[float, bytes], ...]
    raw: bytes | BlobRef | None


def _prepare(mock: Mock) -> _Prepared | str | None:
    response = mock.response
    if response is None:
        return None
    if not isinstance(response, WireResponse):
        return f"{mock.id} holds no Redis answer"
    try:
        answer = answer_of(response.data, raw=response.raw is not None)
    except PlainError as exc:
        return f"the recorded answer of {mock.id} is invalid: {exc}"
    return _Prepared(
        b"".join(encode_reply(f) for f in answer.frames),
        answer.delay,
        tuple((delay, encode_reply(f)) for delay, f in answer.after),
        response.raw,
    )


class _MockConnection:
    def __init__(self, server: RedisMockServer, client: ByteStream) -> None:
        self.server = server
        self.dep = server.dep.name
        self.client = client
        self.parser = RespParser(
            Kind.COMMAND,
            stream_threshold=LARGE_ARG,
            max_bulk_length=server.dep.max_message_size,
            known=server.known,
        )
        self.assembler = CommandAssembler()
        self.requests = Requests()
        self.out: list[bytes] = []  # answers to write at the next read
        self.later: deque[tuple[float, bytes]] = deque()  # (loop time to send at, frame)
        self.pusher: asyncio.Task[None] | None = None
        self.closing = False
        self.pending: object = None  # what stopped serving inline (see _advance)

    async def run(self) -> None:
        try:
            await self._loop()
        finally:
            if self.pusher is not None:
                self.pusher.cancel()

    async def _loop(self) -> None:
        client = self.client
        while not self.closing:
            action = self._advance()
            if action is NEED_DATA:
                await self._write()
                # Plain commands are answered as their bytes arrive, with no task switch; the
                # rest (delays, stored bodies, pushes, errors) come back here.
                if await serve_inline(client, self._feed):
                    action = self.pending
                    self.pending = None
                    if action is None:
                        continue
                else:
                    data = await client.read()
                    if not data:
                        return
                    with contextlib.suppress(ProtocolError):  # raised again by next_event()
                        self.parser.feed(data)
                    continue
            if isinstance(action, ProtocolError):
                log.info("%s: malformed client bytes: %s", self.dep, action)
                self._send_later_now()
                self.out.append(error_reply(f"wiretape: malformed command: {action.message}"))
                await self._write()
                return
            if isinstance(action, _Prepared):
                await self._deliver(action)
        await self._write()

    def _feed(self, data: bytes) -> bool:
        """Bytes received while serving inline: answer what is plain, and say whether to go on
        inline (False leaves what is not plain, or the end of the stream, in ``pending``)."""
        with contextlib.suppress(ProtocolError):  # raised again by next_event()
            self.parser.feed(data)
        action = self._advance()
        if action is NEED_DATA:
            self._flush()
            return True
        self.pending = action
        return False

    def _advance(self) -> object:
        """Answer the buffered commands whose answers are plain frames, up to the first that
        needs more: NEED_DATA when the buffer is used up, the malformed bytes' ProtocolError,
        an answer to deliver (``_Prepared``), or None after QUIT."""
        parser = self.parser
        cache = self.server.requests
        while not self.closing:
            try:
                event = parser.next_event()
            except ProtocolError as exc:
                return exc
            if event is NEED_DATA:
                return NEED_DATA
            if type(event) is Command:
                if not event.args:
                    continue
                request, name, _ = cache.request(self.requests, event.args)
            else:
                args = self.assembler.feed(event)
                if not args:
                    continue
                name = name_of(args)
                request = with_request_noise(self.requests.request(args, name), self.server.noise)
            answer = self._find(request)
            if answer is None:
                continue
            if name == "QUIT":
                self.closing = True
            if answer.delay > 0 or answer.raw is not None or answer.after:
                return answer
            self.out.append(answer.frames)
        return None

    async def _write(self) -> None:
        self._flush()
        await self.client.drain()

    def _flush(self) -> None:
        """Write the answers collected, in one piece."""
        out = self.out
        if out:
            self.client.write(out[0] if len(out) == 1 else b"".join(out))
            out.clear()

    def _find(self, request: WireRequest) -> _Prepared | None:
        """The answer to send for ``request``; None when there is none to send (a miss or an
        unsendable recording has been answered with an error already)."""
        if self.later or self.pusher is not None:
            self._send_later_now()
        found = self.server.index.lookup(self.dep, request)
        if isinstance(found, Miss):
            self._miss(found, request.summary)
            return None
        answer = self.server.prepared(found)
        if isinstance(answer, str):
            self.out.append(error_reply(f"wiretape: {request.summary}: {answer}"))
            return None
        return answer  # None: recorded without an answer, the server never answered it

    async def _deliver(self, answer: _Prepared) -> None:
        """An answer that waits its recorded delay, is a stored body, or has frames after it."""
        if answer.delay > 0:
            await self._write()
            await asyncio.sleep(answer.delay)
        if answer.raw is not None:
            await self._send_raw(answer.raw)
        else:
            self.out.append(answer.frames)
        if answer.after:
            start = asyncio.get_running_loop().time()
            self.later.extend((start + delay, frame) for delay, frame in answer.after)
            self.pusher = asyncio.create_task(self._push_later())

    def _miss(self, miss: Miss, summary: str) -> None:
        text = f"wiretape: no recorded answer for {summary}"
        if miss.candidates:
            best = miss.candidates[0]
            text += f"; closest recording {best.mock_id}: " + "; ".join(best.differences)
        if miss.reason:
            text += f"; {miss.reason}"
        self.out.append(error_reply(text))
        if self.server.on_miss is not None:
            self.server.on_miss(miss)

    async def _send_raw(self, raw: bytes | BlobRef) -> None:
        if isinstance(raw, bytes):
            self.out.append(raw)
            return
        await self._write()
        with open(raw.path, "rb") as fh:
            while chunk := fh.read(READ_SIZE):
                self.client.write(chunk)
                await self.client.drain()

    def _send_later_now(self) -> None:
        """Frames recorded before the client's next command go out before its answer."""
        if self.pusher is not None:
            self.pusher.cancel()
            self.pusher = None
        while self.later:
            self.out.append(self.later.popleft()[1])

    async def _push_later(self) -> None:
        loop = asyncio.get_running_loop()
        while self.later:
            at, frame = self.later[0]
            wait = at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self.later.popleft()
            self.client.write(frame)
            await self.client.drain()
