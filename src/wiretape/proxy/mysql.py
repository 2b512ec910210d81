"""MySQL/MariaDB: the record proxy in front of a real server, and the mock server for replay.

Record (``MysqlRecordHooks``): each client connection gets its own upstream connection. The
start-up is relayed packet by packet, because wiretape takes part in it: the server's greeting
reaches the client without the capabilities wiretape does not decode (compression, MariaDB's
metadata cache) or declines (LOCAL INFILE), and with the SSL flag wiretape chooses
(``client_tls``); a client's SSLRequest is answered by wiretape (TLS with the wiretape CA), and
toward the server TLS follows ``upstream_tls``. When only one side uses TLS the two sides number
their login packets differently, so auth packets are renumbered as they are relayed. The auth
rounds themselves (mysql_native_password, caching_sha2_password's fast and full paths, auth
switches, public-key requests) pass through untouched and are never stored: the start-up is kept
as a reusable session mock holding only the greeting (without its scramble) and the final OK.

After the login, bytes are forwarded as they arrive in both directions and only then parsed;
the ``Tracker`` pairs commands with their replies into exchanges, which become mocks. If a
packet cannot be parsed, the failure is logged and the connection carries on as a raw pipe.

Replay (``MysqlMockServer``): the recorded greeting is sent with a fresh scramble, any
credentials are accepted (OK), and each command is looked up in the ``MockIndex`` with the key
the recording computed, without the values the dependency's ``request_noise`` rules name
(``with_request_noise``; the recordings in the index are keyed the same way). Prepared
statements get ids from the mock server, per connection; an execute is matched by the SQL its id
was prepared with. A recorded answer is written from its
stored form once per mock (``replies.reply_bytes``); one equal to the answer last written for
the same statement reuses its bytes. A miss answers an ERR packet
(1105/HY000, ``wiretape: no recorded answer for ...``) naming the closest recording; malformed
bytes get ERR 1835/08S01 and the connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import ssl
import time
from collections.abc import Callable
from typing import Any

from wiretape.config import DepConfig
from wiretape.errors import ProtocolError
from wiretape.match.index import MockIndex
from wiretape.model import BlobRef, LinkKind, Miss, Mock, WireRequest, WireResponse
from wiretape.protocols.mysql.codec import (
    NEED_DATA,
    ClientParser,
    Conversation,
    Packet,
    Phase,
    ServerParser,
    encode_packet,
)
from wiretape.protocols.mysql.exchange import (
    Exchange,
    Statements,
    Tracker,
    client_capabilities,
    client_doc,
    connect_request,
    decode_messages,
    encode_reply,
    messages_doc,
    request_for,
    step_for,
    with_request_noise,
)
from wiretape.protocols.mysql.messages import (
    AuthSwitchResponse,
    Capability,
    ClientAuthData,
    ClientMessage,
    EofPacket,
    ErrPacket,
    HandshakeResponse41,
    HandshakeV10,
    LocalInfileData,
    LocalInfileRequest,
    MariaDbCapability,
    OkPacket,
    Ping,
    PrepareOk,
    Query,
    Quit,
    ServerMessage,
    ServerStatus,
    SslRequest,
    StmtClose,
    StmtPrepare,
    StmtReset,
    StmtSendLongData,
    decode_handshake,
    decode_login,
    decode_ok,
    encode_payload,
)
from wiretape.protocols.mysql.packets import Reader, encode_frames, join_payload, scan_packet
from wiretape.protocols.mysql.replies import reply_bytes
from wiretape.proxy.streams import (
    READ_SIZE,
    ByteStream,
    SocketStream,
    TlsServerStream,
    open_stream,
    serve_inline,
    terminate_app_tls,
)
from wiretape.proxy.tls import CertificateAuthority
from wiretape.runner.recorder import Attribution, Recorder

__all__ = ["MysqlMockServer", "MysqlRecordHooks", "err_packet"]

log = logging.getLogger("wiretape.mysql")

PROTOCOL = "mysql"
MISS_CODE = 1105  # ER_UNKNOWN_ERROR, with SQLSTATE HY000 and a message starting "wiretape:"
MISS_STATE = "HY000"
MALFORMED_CODE = 1835  # ER_MALFORMED_PACKET
MALFORMED_STATE = "08S01"
CONNECT_CODE = 2003  # CR_CONN_HOST_ERROR: the upstream cannot be reached
LARGE_MESSAGES = 2000  # a reply with more packets is stored as raw bytes in bodies/
PREVIEW_MESSAGES = 20
_STARTUP_LIMIT = 1 << 20  # no start-up packet is this large

# Capabilities taken out of the greeting the client sees and out of the login the server sees:
# protocol compression (not decoded), LOCAL INFILE (declined: the server answers LOAD DATA
# LOCAL with an error) and multi-factor authentication (its extra rounds are not relayed).
_STRIPPED = int(
    Capability.COMPRESS
    | Capability.ZSTD_COMPRESSION_ALGORITHM
    | Capability.LOCAL_FILES
    | Capability.MULTI_FACTOR_AUTHENTICATION
)
_STRIPPED_MARIADB = int(MariaDbCapability.CACHE_METADATA)  # result metadata skipped
_SSL = int(Capability.SSL)

# The greeting when no connection was recorded.
_DEFAULT_CAPS = int(
    Capability.LONG_PASSWORD | Capability.FOUND_ROWS | Capability.LONG_FLAG
    | Capability.CONNECT_WITH_DB | Capability.ODBC | Capability.IGNORE_SPACE
    | Capability.PROTOCOL_41 | Capability.INTERACTIVE | Capability.IGNORE_SIGPIPE
    | Capability.TRANSACTIONS | Capability.RESERVED | Capability.SECURE_CONNECTION
    | Capability.MULTI_STATEMENTS | Capability.MULTI_RESULTS | Capability.PS_MULTI_RESULTS
    | Capability.PLUGIN_AUTH | Capability.CONNECT_ATTRS
    | Capability.PLUGIN_AUTH_LENENC_CLIENT_DATA | Capability.SESSION_TRACK
    | Capability.DEPRECATE_EOF
)  # fmt: skip
_DEFAULT_GREETING = HandshakeV10(
    server_version="8.0.36-wiretape",
    connection_id=0,
    scramble1=bytes(8),
    capabilities=_DEFAULT_CAPS,
    charset=45,  # utf8mb4_general_ci
    status=int(ServerStatus.AUTOCOMMIT),
    auth_data_len=21,
    scramble2=bytes(13),
    auth_plugin_name="mysql_native_password",
)
_DEFAULT_OK = OkPacket(status=int(ServerStatus.AUTOCOMMIT), info="")
_NOT_MORE = int(~ServerStatus.MORE_RESULTS_EXISTS)  # the flags a reply's status leaves set
_QUERIES_KEPT = 8192


def err_packet(seq: int, code: int, state: str, message: str) -> bytes:
    return encode_frames(seq, encode_payload(ErrPacket(code, message, state)))


def _strip_mariadb(reserved: bytes, at: int) -> bytes:
    caps = int.from_bytes(reserved[at : at + 4], "little") & ~_STRIPPED_MARIADB
    return reserved[:at] + caps.to_bytes(4, "little") + reserved[at + 4 :]


@dataclasses.dataclass(slots=True)
class _Auth:
    """How the two sides of a start-up relate during the auth rounds."""

    delta: int  # the server's sequence ids minus the client's
    scramble: bytes  # the nonce the current auth plugin uses
    encrypt: bool  # the client uses TLS and the server's side does not


def rsa_encrypt_password(pem: bytes, password: bytes, scramble: bytes) -> bytes:
    """What caching_sha2_password sends on a connection without TLS: the password XOR the
    scramble, RSA-OAEP encrypted with the server's public key."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, rsa.RSAPublicKey) or not scramble:
        raise ProtocolError("the server's caching_sha2_password key is not an RSA public key")
    mixed = bytes(b ^ scramble[i % len(scramble)] for i, b in enumerate(password))
    oaep = padding.OAEP(
        mgf=padding.MGF1(algorithm=hashes.SHA1()), algorithm=hashes.SHA1(), label=None
    )
    return key.encrypt(mixed, oaep)


def client_greeting(greeting: HandshakeV10, tls: bool) -> HandshakeV10:
    """The greeting as the client sees it: without what wiretape does not decode or declines,
    and with the SSL flag when wiretape accepts TLS itself."""
    caps = int(greeting.capabilities) & ~_STRIPPED
    caps = caps | _SSL if tls else caps & ~_SSL
    reserved = greeting.reserved
    if not caps & Capability.LONG_PASSWORD:
        reserved = _strip_mariadb(reserved, 6)
    return dataclasses.replace(greeting, capabilities=caps, reserved=reserved)


class _Packets:
    """Whole packets read from a stream, for the start-up, where they are relayed one by one."""

    def __init__(self, stream: ByteStream, initial: bytes = b"") -> None:
        self.stream = stream
        self.buf = bytearray(initial)
        self.last = b""  # the raw bytes of the packet returned last

    async def next(self) -> tuple[int, bytes] | None:
        while True:
            found = scan_packet(self.buf, 0, 0)
            if found is not None:
                seq, _, end = found
                payload = join_payload(self.buf, 0, end)
                self.last = bytes(self.buf[:end])
                del self.buf[:end]
                return seq, payload
            if len(self.buf) > _STARTUP_LIMIT:
                raise ProtocolError(f"a start-up packet larger than {_STARTUP_LIMIT} bytes")
            data = await self.stream.read()
            if not data:
                return None
            self.buf += data

    def rest(self) -> bytes:
        data = bytes(self.buf)
        self.buf.clear()
        return data


# -- record -----------------------------------------------------------------------------------


class MysqlRecordHooks:
    """Record proxy for one ``protocol: mysql`` dependency."""

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

    async def serve(self, client: ByteStream) -> None:
        await _RecordConnection(self, client).run()


class _RecordConnection:
    def __init__(self, hooks: MysqlRecordHooks, client: ByteStream) -> None:
        self.hooks = hooks
        self.dep = hooks.dep.name
        self.client = client
        self.upstream: SocketStream | None = None
        self.started = time.time()
        self.parsing = True
        self.caps = 0
        self.mariadb_caps = 0
        self.leftover_client = b""  # what the client sent past its login
        self.leftover_server = b""  # what the server sent past its OK
        self.conversation: Conversation | None = None
        self.client_parser: ClientParser | None = None
        self.server_parser: ServerParser | None = None
        self.tracker = Tracker(new_tag=hooks.recorder.attribute_now)
        self.pending: list[Exchange] = []

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
            await self._flush()
        finally:
            await self.client.drain()
            if self.upstream is not None:
                self.upstream.close()

    # start-up: relayed packet by packet

    async def _start(self) -> bool:
        dep = self.hooks.dep
        try:
            self.upstream = await open_stream(dep.upstream_host, dep.upstream_port)
        except (TimeoutError, OSError) as exc:
            self.client.write(
                err_packet(
                    0, CONNECT_CODE, "HY000", f"wiretape: cannot reach {dep.upstream}: {exc}"
                )
            )
            return False
        server = _Packets(self.upstream)
        client = _Packets(self.client)
        try:
            return await self._login(server, client)
        except ProtocolError as exc:
            log.warning(
                "%s: cannot parse the connection start-up (%s); passing this connection "
                "through unrecorded",
                self.dep,
                exc,
            )
            self.parsing = False
            self.leftover_client = client.rest()
            self.leftover_server = server.rest()
            return True

    async def _login(self, server: _Packets, client: _Packets) -> bool:
        hooks = self.hooks
        dep = hooks.dep
        assert self.upstream is not None
        got = await server.next()
        if got is None:
            return False
        _, payload = got
        if payload[:1] == b"\xff":
            self.client.write(server.last)  # the server refused the connection
            return False
        try:
            greeting = decode_handshake(Reader(payload, 0, "greeting"))
        except ProtocolError:
            self.client.write(server.last)
            raise
        accept = dep.client_tls == "accept" and hooks.ca is not None
        shown = client_greeting(greeting, accept)
        self.client.write(encode_frames(0, encode_payload(shown)))
        await self.client.drain()

        got = await client.next()
        if got is None:
            return False
        client_seq, payload = got
        try:
            login = decode_login(Reader(payload, 0, "handshake response"))
        except ProtocolError:
            self.upstream.write(client.last)
            raise
        if isinstance(login, SslRequest):
            if not accept:
                self.client.write(
                    err_packet(
                        client_seq + 1, 1045, "08004",
                        f"wiretape: TLS is declined for this connection "
                        f"(deps.{self.dep}.client_tls is decline)",
                    )
                )  # fmt: skip
                return False
            assert hooks.ca is not None
            context = hooks.ca.loopback_context()
            tls = await terminate_app_tls(
                self.client, context, client.rest(), dep=self.dep, log=log
            )
            if tls is None:
                return False
            self.client = tls
            client = _Packets(tls)
            got = await client.next()
            if got is None:
                return False
            client_seq, payload = got
            login = decode_login(Reader(payload, 0, "handshake response"))
            if not isinstance(login, HandshakeResponse41):
                raise ProtocolError("a second SSLRequest")

        client_tls = isinstance(self.client, TlsServerStream)
        up_seq = 1
        if await self._upstream_tls(greeting, login, client_seq + 1, client_tls):
            up_seq = 2
            server = _Packets(self.upstream)
        elif not self.upstream:
            return False
        caps = int(login.capabilities) & ~_STRIPPED & ~_SSL
        if up_seq == 2:
            caps |= _SSL
        upstream_login = dataclasses.replace(
            login,
            capabilities=caps,
            reserved=_strip_mariadb(login.reserved, 19),
            zstd_level=None,
        )
        self.upstream.write(encode_frames(up_seq, encode_payload(upstream_login)))
        self.caps = int(greeting.capabilities) & caps
        if not greeting.capabilities & Capability.LONG_PASSWORD:
            self.mariadb_caps = int(
                greeting.mariadb_capabilities & upstream_login.mariadb_capabilities
            )
        auth = _Auth(up_seq - client_seq, greeting.scramble, client_tls and up_seq == 1)
        ok = await self._auth(server, client, auth)
        if ok is None:
            return False
        self.leftover_client = client.rest()
        self.leftover_server = server.rest()
        exchange = Exchange(
            connect_request(login.user, login.database),
            [Packet(0, shown), Packet(up_seq + 1, ok)],
            self.started,
            time.time(),
            tag=Attribution(None, LinkKind.SESSION),
            client=client_doc(login),
        )
        self.pending.append(exchange)
        return True

    async def _upstream_tls(
        self, greeting: HandshakeV10, login: HandshakeResponse41, err_seq: int, client_tls: bool
    ) -> bool:
        """Start TLS toward the server when ``upstream_tls`` asks for it; False when not (and
        ``self.upstream`` is None when the connection cannot go on: the client got an ERR
        packet with sequence id ``err_seq``).

        ``prefer`` uses TLS when the server offers it and the client uses TLS too: a client
        without TLS may authenticate with an RSA-encrypted password (caching_sha2_password's
        full authentication), which a server accepts only on a connection without TLS.
        """
        dep = self.hooks.dep
        assert self.upstream is not None
        offered = bool(greeting.capabilities & Capability.SSL)
        if dep.upstream_tls == "disable" or (
            dep.upstream_tls == "prefer" and not (offered and client_tls)
        ):
            return False
        if not offered:
            self.client.write(
                err_packet(
                    err_seq, 2026, "HY000",
                    f"wiretape: {dep.upstream} does not accept TLS, and "
                    f"deps.{dep.name}.upstream_tls is {dep.upstream_tls}",
                )
            )  # fmt: skip
            self.upstream.close()
            self.upstream = None
            return False
        caps = (int(login.capabilities) & ~_STRIPPED) | _SSL
        request = SslRequest(caps, login.max_packet_size, login.charset, login.reserved)
        self.upstream.write(encode_frames(1, encode_payload(request)))
        await self.upstream.drain()
        try:
            await self.upstream.start_tls(self.hooks.upstream_tls, dep.upstream_host)
        except (ssl.SSLError, OSError) as exc:
            self.client.write(
                err_packet(err_seq, 2026, "HY000", f"wiretape: TLS to {dep.upstream} failed: {exc}")
            )
            self.upstream.close()
            self.upstream = None
            return False
        return True

    async def _auth(self, server: _Packets, client: _Packets, auth: _Auth) -> OkPacket | None:
        """Relay the auth rounds until the server's OK (returned) or ERR (None)."""
        assert self.upstream is not None
        full_auth = False
        while True:
            got = await server.next()
            if got is None:
                return None
            seq, payload = got
            self.client.write(encode_frames((seq - auth.delta) % 256, payload))
            first = payload[0] if payload else -1
            if first == 0x00:
                return decode_ok(Reader(payload, 0, "auth OK"), self.caps)
            if first == 0xFF:
                await self.client.drain()
                return None
            if first == 0x01 and payload == b"\x01\x03":
                continue  # caching_sha2_password: fast auth succeeded, the OK follows
            if first not in (0x01, 0xFE):
                raise ProtocolError(f"0x{first:02x} is not an auth reply (OK, ERR, 0xFE, 0x01)")
            if first == 0xFE and len(payload) > 1:
                auth.scramble = payload[1:].split(b"\x00", 1)[-1].rstrip(b"\x00")
            full_auth = payload == b"\x01\x04"
            await self.client.drain()
            got = await client.next()
            if got is None:
                return None
            seq, payload = got
            if full_auth and auth.encrypt and payload[-1:] == b"\x00":
                # The client sent its password in clear, as over TLS; the server's side has
                # none, so it takes the password encrypted with its public key.
                payload = await self._encrypted(server, payload, seq, auth)
                if not payload:
                    return None
            self.upstream.write(encode_frames((seq + auth.delta) % 256, payload))

    async def _encrypted(self, server: _Packets, password: bytes, seq: int, auth: _Auth) -> bytes:
        """``password`` (NUL-terminated) encrypted with the server's RSA key, which is asked
        for first; the extra round shifts the server's sequence ids by two."""
        assert self.upstream is not None
        self.upstream.write(encode_frames((seq + auth.delta) % 256, b"\x02"))
        got = await server.next()
        if got is None or got[1][:1] != b"\x01":
            log.warning("%s: the server sent no public key for caching_sha2_password", self.dep)
            return b""
        auth.delta += 2
        try:
            return rsa_encrypt_password(got[1][1:], password, auth.scramble)
        except (ValueError, ProtocolError) as exc:
            log.warning("%s: cannot encrypt the password for the server: %s", self.dep, exc)
            return b""

    # the command phase: forward first, then parse

    def _parsers(self) -> tuple[ClientParser, ServerParser]:
        if self.client_parser is None or self.server_parser is None:
            self.conversation = Conversation(
                phase=Phase.COMMAND,
                capabilities=self.caps,
                mariadb_capabilities=self.mariadb_caps,
            )
            self.client_parser = ClientParser(self.conversation)
            self.server_parser = ServerParser(self.conversation)
        return self.client_parser, self.server_parser

    async def _pump_client(self, upstream: ByteStream) -> None:
        if self.leftover_client:
            upstream.write(self.leftover_client)
            self._parse(self.leftover_client, client=True)
        while True:
            data = await self.client.read()
            if not data:
                upstream.write_eof()
                return
            upstream.write(data)
            self._parse(data, client=True)
            await upstream.drain()

    async def _pump_server(self, upstream: ByteStream) -> None:
        if self.leftover_server:
            self.client.write(self.leftover_server)
            self._parse(self.leftover_server, client=False)
        while True:
            data = await upstream.read()
            if not data:
                self.client.write_eof()
                break
            self.client.write(data)
            self._parse(data, client=False)
            await self._flush()
            await self.client.drain()
        await self._flush()

    def _parse(self, data: bytes, *, client: bool) -> None:
        if not self.parsing:
            return
        cp, sp = self._parsers()
        try:
            now = time.time()
            if not client:
                sp.feed(data)
            elif (query := cp.take_query(data)) is not None:
                self.tracker.client(Packet(0, query), now)
                if sp.idle:  # no reply waited for this command: nothing more to parse
                    return
            else:
                cp.feed(data)
            progress = True
            while progress:
                progress = False
                while (event := cp.next_event()) is not NEED_DATA:
                    progress = True
                    if isinstance(event, Packet):
                        self.tracker.client(event, now)
                while (event := sp.next_event()) is not NEED_DATA:
                    progress = True
                    self.pending.extend(self.tracker.server(event, now))
            cp.discard_raw()
            sp.discard_raw()
        except ProtocolError as exc:
            log.warning(
                "%s: cannot parse the %s's packets (%s); passing this connection through "
                "unrecorded from here on",
                self.dep,
                "client" if client else "server",
                exc,
            )
            self.parsing = False
            self.client_parser = self.server_parser = None

    async def _flush(self) -> None:
        while self.pending:
            await self._store(self.pending.pop(0))

    async def _store(self, exchange: Exchange) -> None:
        attr = exchange.tag
        assert isinstance(attr, Attribution)
        await self.hooks.recorder.add_wire_mock(
            self.dep,
            PROTOCOL,
            attr,
            exchange.request,
            self._response(exchange),
            started=exchange.started,
            duration=max(0.0, exchange.ended - exchange.started),
        )

    def _response(self, exchange: Exchange) -> WireResponse:
        if len(exchange.packets) <= LARGE_MESSAGES:
            return WireResponse(exchange.response_data())
        sink = self.hooks.recorder.new_sink()
        for packet in exchange.packets:
            sink.write(encode_packet(packet, self.caps))
        preview: dict[str, Any] = {
            "messages": messages_doc(exchange.messages[:PREVIEW_MESSAGES]),
            "total": len(exchange.packets),
        }
        return WireResponse(preview, sink.finish())


# -- replay -----------------------------------------------------------------------------------


def _scramble() -> bytes:
    return bytes(33 + b % 94 for b in os.urandom(20))  # printable, never NUL


class MysqlMockServer:
    """Answers a ``protocol: mysql`` dependency from the recordings during replay."""

    def __init__(
        self,
        dep: DepConfig,
        index: MockIndex,
        *,
        ca: CertificateAuthority | None,
        on_miss: Callable[[Miss], None] | None = None,
    ) -> None:
        self.dep = dep
        self.index = index
        self.ca = ca
        self.on_miss = on_miss
        self.connections = 0
        # A recording is decoded once, and encoded once per framing, however often it answers.
        self.decoded: dict[str, list[ServerMessage]] = {}
        self.encoded: dict[tuple[str, int, int, int], bytes] = {}
        self.statuses: dict[str, int] = {}
        # Applications send the same statements over and over: each text is keyed once.
        self.queries: dict[str, WireRequest] = {}
        self._encode_ahead()

    def _encode_ahead(self) -> None:
        """Encode every recorded reply to a command, before the first client connects, for the
        capabilities each recorded start-up's client will negotiate with this server again.

        Replies then cost a lookup when they are served, which matters because most are served
        once. A client that negotiates other capabilities gets its replies encoded when they are
        first served, as do recordings made without the client's capabilities.
        """
        framings: set[tuple[int, int]] = set()
        accept = self.dep.client_tls == "accept" and self.ca is not None
        commands: list[Mock] = []
        for mock in self.index.mocks_of(self.dep.name):
            response = mock.response
            if not isinstance(response, WireResponse) or response.raw is not None:
                continue
            step = mock.request.data if isinstance(mock.request, WireRequest) else None
            if not isinstance(step, dict) or "prepare" in step:
                continue  # a prepare's reply carries the statement id of its connection
            if "connect" not in step:
                commands.append(mock)
                continue
            client = client_capabilities(response.data)
            try:
                recorded = self.messages(mock.id, response.data)
            except ValueError:  # PlainError: served as a miss of the greeting, as without this
                continue
            if client is None or not recorded or not isinstance(recorded[0], HandshakeV10):
                continue
            greeting = client_greeting(recorded[0], accept)
            framings.add(
                (
                    greeting.capabilities & client[0],
                    greeting.mariadb_capabilities & client[1],
                )
            )
        for caps, maria in framings:
            for mock in commands:
                assert isinstance(mock.response, WireResponse)
                # A recording that cannot be encoded fails when it is served, as without this.
                with contextlib.suppress(ProtocolError, ValueError, TypeError, OverflowError):
                    self.encode(mock.id, mock.response.data, 1, caps, maria)

    async def serve(self, client: ByteStream) -> None:
        self.connections += 1
        await _MockConnection(self, client, self.connections).run()

    def messages(self, mock_id: str, data: object) -> list[ServerMessage]:
        found = self.decoded.get(mock_id)
        if found is None:
            found = self.decoded[mock_id] = decode_messages(data)
        return found

    def query_request(self, sql: str) -> WireRequest:
        """The exact-key request of a COM_QUERY without query attributes (see ``request_for``)."""
        found = self.queries.get(sql)
        if found is None:
            if len(self.queries) >= _QUERIES_KEPT:
                self.queries.clear()
            step = step_for(Query(sql), Statements())
            found = self.queries[sql] = request_for(step, exact_only=True)
        return found

    def encode(self, mock_id: str, data: object, seq: int, caps: int, maria: int) -> bytes:
        """The bytes of a recorded reply (but not a prepare's) for a connection, kept for the
        next time; empty for a LOCAL INFILE exchange, which is not replayed (the client's file
        would have to be read). Sets the reply's entry in ``statuses``."""
        if fast := reply_bytes(data, seq=seq, capabilities=caps, mariadb_capabilities=maria):
            encoded, status, _ = fast
            self.statuses.setdefault(mock_id, -1 if status < 0 else status & _NOT_MORE)
        else:
            messages = self.messages(mock_id, data)
            self.status(mock_id, messages, 0)
            encoded = b""
            if not any(isinstance(message, LocalInfileRequest) for message in messages):
                encoded = encode_reply(
                    messages, seq=seq, capabilities=caps, mariadb_capabilities=maria
                )
        self.encoded[(mock_id, seq, caps, maria)] = encoded
        return encoded

    def status(self, mock_id: str, messages: list[ServerMessage], current: int) -> int:
        """The server status a recorded reply leaves the connection in."""
        status = self.statuses.get(mock_id)
        if status is None:
            status = -1
            for m in messages:
                if isinstance(m, OkPacket | EofPacket):
                    status = m.status & _NOT_MORE
            self.statuses[mock_id] = status
        return current if status < 0 else status


class _MockConnection:
    def __init__(self, server: MysqlMockServer, client: ByteStream, number: int) -> None:
        self.server = server
        self.dep = server.dep.name
        self.client = client
        self.number = number
        self.conversation = Conversation(phase=Phase.LOGIN)
        self.parser = ClientParser(self.conversation)
        self.statements = Statements()
        self.next_statement = 1
        self.ok: OkPacket = _DEFAULT_OK
        self.status = int(ServerStatus.AUTOCOMMIT)  # as the last recorded reply left it
        self.caps = self.maria = 0  # negotiated by the login
        self.held: bytes | None = None  # what stopped serving inline: bytes not taken,
        self.blob: BlobRef | None = None  # or a stored body to send

    async def run(self) -> None:
        try:
            self._greet()
            await self._loop()
        finally:
            await self.client.drain()

    def _greet(self) -> None:
        server = self.server
        greeting, ok = _DEFAULT_GREETING, _DEFAULT_OK
        found = server.index.lookup(self.dep, connect_request("", None), optional=True)
        if not isinstance(found, Miss) and isinstance(found.response, WireResponse):
            recorded = server.messages(found.id, found.response.data)
            if len(recorded) == 2 and isinstance(recorded[0], HandshakeV10):
                greeting = recorded[0]
                if isinstance(recorded[1], OkPacket):
                    ok = recorded[1]
        scramble = _scramble()
        greeting = dataclasses.replace(
            client_greeting(greeting, server.dep.client_tls == "accept" and server.ca is not None),
            connection_id=self.number,
            scramble1=scramble[:8],
            scramble2=scramble[8:] + b"\x00",
            auth_data_len=21,
        )
        if not greeting.capabilities & Capability.SECURE_CONNECTION:
            greeting = dataclasses.replace(greeting, scramble2=b"", auth_data_len=0)
        self.conversation.handshake = greeting
        self.ok = ok
        self.status = ok.status
        self.client.write(encode_frames(0, encode_payload(greeting)))

    async def _loop(self) -> None:
        parser = self.parser
        while True:
            while True:
                try:
                    event = parser.next_event()
                except ProtocolError as exc:
                    log.info("%s: malformed client bytes: %s", self.dep, exc)
                    seq = 1 if self.conversation.phase is Phase.COMMAND else 2
                    self.client.write(
                        err_packet(
                            seq, MALFORMED_CODE, MALFORMED_STATE,
                            f"wiretape: malformed packet: {exc.message}",
                        )
                    )  # fmt: skip
                    return
                if event is NEED_DATA:
                    break
                assert isinstance(event, Packet)
                parser.discard_raw()
                if not await self._on_packet(event):
                    return
            await self.client.drain()
            # The common case, a client waiting for the answer to one plain query, skips the
            # buffer and the event queue, and is answered inline, in the event loop's callback,
            # with no task switch; anything else comes back here.
            if await serve_inline(self.client, self._feed):
                blob, self.blob = self.blob, None
                if blob is not None:
                    await self._send_blob(blob)
                data, self.held = self.held, None
                if data is None:
                    continue
            else:
                data = await self.client.read()
            while (query := parser.take_query(data)) is not None:
                await self._answer(query)
                await self.client.drain()
                data = await self.client.read()
            if not data:
                return
            with contextlib.suppress(ProtocolError):
                parser.feed(data)

    async def _on_packet(self, packet: Packet) -> bool:
        m = packet.message
        conv = self.conversation
        if isinstance(m, SslRequest):
            if not conv.handshake or not conv.handshake.capabilities & Capability.SSL:
                return False
            assert self.server.ca is not None
            context = self.server.ca.loopback_context()
            dep = self.server.dep.name
            tls = await terminate_app_tls(
                self.client, context, self.parser.start_tls(), dep=dep, log=log
            )
            if tls is None:
                return False
            self.client = tls
            return True
        if isinstance(m, HandshakeResponse41):
            # Any credentials are accepted.
            self.client.write(
                encode_reply(
                    [self.ok],
                    seq=(packet.seq + 1) % 256,
                    capabilities=conv.capabilities,
                    mariadb_capabilities=conv.mariadb_capabilities,
                )
            )
            conv.authenticated()
            self.caps, self.maria = conv.capabilities, conv.mariadb_capabilities
            return True
        if isinstance(m, Quit):
            return False
        if not isinstance(m, ClientMessage):
            raise ProtocolError(f"a client sent {type(m).__name__}")
        self.statements.sent(m)
        if isinstance(m, StmtClose | StmtSendLongData):
            return True  # not answered
        if isinstance(m, AuthSwitchResponse | ClientAuthData | LocalInfileData):
            return True  # not asked for: the login and COM_CHANGE_USER are accepted at once
        await self._answer(m)
        return True

    def _feed(self, data: bytes) -> bool:
        """Bytes received while serving inline: answer a plain query, and say whether to go on
        inline (False leaves other bytes in ``held``, a stored body to send in ``blob``)."""
        query = self.parser.take_query(data)
        if query is None:
            self.held = data
            return False
        self.blob = self._reply(query)
        return self.blob is None

    async def _answer(self, m: ClientMessage) -> None:
        blob = self._reply(m)
        if blob is not None:
            await self._send_blob(blob)

    def _reply(self, m: ClientMessage) -> BlobRef | None:
        """Answer ``m``; a stored body to stream is returned for the task to send (the reply
        then counts as sent once it is)."""
        conv = self.conversation
        server = self.server
        seq = conv.reply_seq
        if type(m) is Query and m.attributes is None:
            request = server.query_request(m.sql)
            step = request.data
        else:
            step = step_for(m, self.statements)
            request = request_for(step, exact_only=True)
        noise = server.dep.request_noise  # the recordings are keyed the same way
        if noise:
            request = with_request_noise(request, noise)
        found = server.index.lookup(self.dep, request, optional=True)
        if isinstance(found, Miss):
            # Not recorded as is: look again with the loose key, and explain a real miss.
            request = with_request_noise(request_for(step), noise)
            housekeeping = isinstance(m, Ping | StmtReset)
            found = server.index.lookup(self.dep, request, optional=housekeeping)
            if isinstance(found, Miss) and housekeeping:
                # A ping or a statement reset nobody recorded: its answer is an OK anyway.
                ok = OkPacket(status=self.status, info="")
                self.client.write(encode_reply([ok], seq=seq, capabilities=conv.capabilities))
                conv.reply_sent()
                return None
            if isinstance(found, Miss):
                self._miss(found, request, seq, m)
                return None
        response = found.response
        if not isinstance(response, WireResponse):
            self._fail(seq, m, f"wiretape: {request_for(step).summary} was recorded failing")
            return None
        if isinstance(response.raw, BlobRef):
            return response.raw
        if response.raw is not None:
            self.client.write(response.raw)
            conv.reply_sent()
            return None
        caps, maria = self.caps, self.maria
        if isinstance(m, StmtPrepare):
            messages = server.messages(found.id, response.data)
            self.status = server.status(found.id, messages, self.status)
            first = messages[0] if messages else None
            prepared = None
            if isinstance(first, PrepareOk):
                prepared = dataclasses.replace(first, statement_id=self.next_statement)
                self.next_statement += 1
                self.statements.prepared(prepared.statement_id, m.sql)
            else:
                self.statements.failed()
            self.client.write(
                encode_reply(
                    messages,
                    seq=seq,
                    capabilities=caps,
                    mariadb_capabilities=maria,
                    statement_id=None if prepared is None else prepared.statement_id,
                )
            )
            conv.reply_sent(prepared)
            return None
        data = server.encoded.get((found.id, seq, caps, maria))
        if data is None:
            data = server.encode(found.id, response.data, seq, caps, maria)
        status = server.statuses[found.id]
        if status >= 0:
            self.status = status
        if not data:
            self._fail(seq, m, "wiretape: a LOCAL INFILE exchange is not replayed")
            return None
        self.client.write(data)
        conv.reply_sent()
        return None

    def _fail(self, seq: int, m: ClientMessage, message: str) -> None:
        self.client.write(err_packet(seq, MISS_CODE, MISS_STATE, message))
        if isinstance(m, StmtPrepare):
            self.statements.failed()
        self.conversation.reply_sent()

    def _miss(self, miss: Miss, request: WireRequest, seq: int, m: ClientMessage) -> None:
        text = f"wiretape: no recorded answer for {request.summary}"
        if miss.candidates:
            best = miss.candidates[0]
            text += f"; closest recording {best.mock_id}: " + "; ".join(best.differences)
        if miss.reason:
            text += f"; {miss.reason}"
        self._fail(seq, m, text)
        if self.server.on_miss is not None:
            self.server.on_miss(miss)

    async def _send_blob(self, raw: BlobRef) -> None:
        """Stream a reply stored in ``bodies/``; the reply counts as sent after it."""
        with open(raw.path, "rb") as fh:
            while chunk := fh.read(READ_SIZE):
                self.client.write(chunk)
                await self.client.drain()
        self.conversation.reply_sent()
