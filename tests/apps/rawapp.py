"""An HTTP/1.1 app on raw asyncio streams, so it can misbehave on purpose.

Run it as ``python -m tests.apps.rawapp --port N`` from the repository root. Keep-alive and
pipelining are honoured (requests on a connection are answered in order). Routes:

- ``GET|HEAD /hello``   JSON ``{"hello": "world"}`` (HEAD: same head, no body)
- ``/chunked``          a chunked response in several chunks, with an ``X-Checksum`` trailer
- ``/gzip``, ``/br``    gzip / brotli encoded JSON with ``Content-Encoding``
- ``/big?mb=N``         N MiB (``big_chunk(i)`` for i in range(N)) streamed, Content-Length set
- ``/echo``             the request body back (Content-Length or chunked request bodies;
                        ``Expect: 100-continue`` answered with ``100 Continue`` first)
- ``/sha``              JSON ``{"sha256", "size", "chunked", "trailers"}`` of the request body,
                        read incrementally (``Expect: 100-continue`` honoured too)
- ``/nocontent``        204;  ``/notmodified`` 304 (with ETag and a Content-Length, no body)
- ``/ws``               ``Upgrade: websocket`` answered with 101, then raw bytes echoed to EOF
- ``/break``            head with Content-Length 1000, 500 bytes of body, then the connection closes
- ``/garbage``          a malformed response head, then the connection closes
- ``/slow?ms=N``        sleeps N ms, then JSON ``{"slept_ms": N}``
- ``/bye``              like ``/hello``, then the app closes the connection, as on a keep-alive
                        timeout (no ``Connection: close``)
- ``/inflight?ms=N``    sleeps N ms while counted as in flight; ``/peak`` the most ever at once
- ``/healthz``          ``ok``

Every request is logged as one line on stdout (it ends up in the set's app.log).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gzip
import hashlib
import json
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import brotli

MIB = 1 << 20
HELLO = b'{"hello":"world"}'
CHUNKS = (b"alpha-", b"beta-", b"gamma-", b"delta")
CHUNK_TRAILER = ("X-Checksum", "abc123")
COMPRESSED_DOC = {"compressed": True, "items": list(range(50)), "note": "squeeze me"}
GARBAGE = b"HTTP/1.1 two-hundred OK\r\nthis line is no header\r\n\r\n"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HEAD = 64 * 1024
INFLIGHT = [0, 0]  # requests to /inflight now, and the most at once


def big_chunk(i: int) -> bytes:
    """The i-th MiB of a /big body: distinct per i, so misordered or lost chunks show."""
    return hashlib.sha256(i.to_bytes(4, "big")).digest() * (MIB // 32)


def compressed_json() -> bytes:
    return json.dumps(COMPRESSED_DOC, separators=(",", ":")).encode()


def gzip_body() -> bytes:
    return gzip.compress(compressed_json(), mtime=0)


def br_body() -> bytes:
    return bytes(brotli.compress(compressed_json()))


class BadRequest(Exception):
    pass


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    path: str = ""
    query: dict[str, list[str]] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None

    def tokens(self, name: str) -> set[str]:
        lname = name.lower()
        out: set[str] = set()
        for key, value in self.headers:
            if key.lower() == lname:
                out.update(t.strip().lower() for t in value.split(",") if t.strip())
        return out

    @property
    def keep_alive(self) -> bool:
        conn = self.tokens("connection")
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn

    @property
    def chunked(self) -> bool:
        return "chunked" in self.tokens("transfer-encoding")


class Body:
    """Reads one request body incrementally (Content-Length or chunked)."""

    def __init__(self, reader: asyncio.StreamReader, req: Request) -> None:
        self.reader = reader
        self.chunked = req.chunked
        length = req.header("content-length")
        self.remaining = 0 if self.chunked else int(length or "0")
        self.chunk_left = 0
        self.done = not self.chunked and self.remaining == 0
        self.trailers: list[tuple[str, str]] = []

    async def read(self) -> bytes:
        """The next piece of the body; b"" once it has ended."""
        if self.done:
            return b""
        if not self.chunked:
            data = await self.reader.read(min(self.remaining, 256 * 1024))
            if not data:
                raise BadRequest("client closed mid-body")
            self.remaining -= len(data)
            self.done = self.remaining == 0
            return data
        if self.chunk_left == 0:
            line = await self.reader.readuntil(b"\r\n")
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while True:
                    tline = await self.reader.readuntil(b"\r\n")
                    if tline == b"\r\n":
                        break
                    name, _, value = tline.decode("latin-1").partition(":")
                    self.trailers.append((name.strip(), value.strip()))
                self.done = True
                return b""
            self.chunk_left = size
        data = await self.reader.read(min(self.chunk_left, 256 * 1024))
        if not data:
            raise BadRequest("client closed mid-chunk")
        self.chunk_left -= len(data)
        if self.chunk_left == 0 and await self.reader.readexactly(2) != b"\r\n":
            raise BadRequest("chunk not followed by CRLF")
        return data

    async def read_all(self) -> bytes:
        parts = []
        while data := await self.read():
            parts.append(data)
        return b"".join(parts)


def head(status: int, reason: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def simple(
    status: int, reason: str, body: bytes, ctype: str, req: Request, extra: list[tuple[str, str]]
) -> bytes:
    headers = [("Content-Type", ctype), ("Content-Length", str(len(body))), *extra]
    if not req.keep_alive:
        headers.append(("Connection", "close"))
    return head(status, reason, headers) + (b"" if req.method == "HEAD" else body)


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError as exc:
        raise BadRequest("request head too large") from exc
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise BadRequest(f"bad request line {lines[0]!r}")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise BadRequest(f"bad header line {line!r}")
        headers.append((name.strip(), value.strip()))
    req = Request(parts[0], parts[1], parts[2], headers)
    url = urlsplit(req.target)
    req.path = url.path
    req.query = parse_qs(url.query)
    return req


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            req = await read_request(reader)
            if req is None:
                return
            print(f"rawapp: {req.method} {req.target}", flush=True)
            keep = await respond(req, reader, writer)
            await writer.drain()
            if not keep or not req.keep_alive:
                return
    except (BadRequest, ValueError, asyncio.IncompleteReadError) as exc:
        print(f"rawapp: connection dropped: {exc!r}", flush=True)
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()
            await writer.wait_closed()


async def continue_if_expected(req: Request, writer: asyncio.StreamWriter) -> None:
    if "100-continue" in req.tokens("expect"):
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()


async def respond(req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Answer one request. Returns False when the connection must close."""
    body = Body(reader, req)
    path = req.path
    if path == "/echo":
        await continue_if_expected(req, writer)
        data = await body.read_all()
        ctype = req.header("content-type") or "application/octet-stream"
        writer.write(simple(200, "OK", data, ctype, req, [("X-Echo-Chunked", str(req.chunked))]))
        return True
    if path == "/sha":
        await continue_if_expected(req, writer)
        digest = hashlib.sha256()
        size = 0
        while data := await body.read():
            digest.update(data)
            size += len(data)
        doc = {
            "sha256": digest.hexdigest(),
            "size": size,
            "chunked": req.chunked,
            "trailers": [list(t) for t in body.trailers],
        }
        out = json.dumps(doc).encode()
        writer.write(simple(200, "OK", out, "application/json", req, []))
        return True
    # Every other route ignores the request body, but reads it to keep the connection in step.
    await body.read_all()
    if path == "/hello":
        writer.write(simple(200, "OK", HELLO, "application/json", req, []))
    elif path == "/healthz":
        writer.write(simple(200, "OK", b"ok", "text/plain", req, []))
    elif path == "/chunked":
        await chunked(req, writer)
    elif path == "/gzip":
        extra = [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
        writer.write(simple(200, "OK", gzip_body(), "application/json", req, extra))
    elif path == "/br":
        extra = [("Content-Encoding", "br")]
        writer.write(simple(200, "OK", br_body(), "application/json", req, extra))
    elif path == "/big":
        await big(req, writer)
    elif path == "/nocontent":
        writer.write(head(204, "No Content", [("X-Route", "nocontent")]))
    elif path == "/notmodified":
        writer.write(head(304, "Not Modified", [("ETag", '"v1"'), ("Content-Length", "17")]))
    elif path == "/ws":
        return await websocket(req, reader, writer)
    elif path == "/break":
        writer.write(head(200, "OK", [("Content-Type", "text/plain"), ("Content-Length", "1000")]))
        writer.write(b"x" * 500)
        await writer.drain()
        return False
    elif path == "/garbage":
        writer.write(GARBAGE)
        await writer.drain()
        return False
    elif path == "/bye":
        writer.write(simple(200, "OK", HELLO, "application/json", req, []))
        await writer.drain()
        return False
    elif path == "/inflight":
        INFLIGHT[0] += 1
        INFLIGHT[1] = max(INFLIGHT[1], INFLIGHT[0])
        try:
            await asyncio.sleep(int(req.query.get("ms", ["5"])[0]) / 1000)
        finally:
            INFLIGHT[0] -= 1
        writer.write(simple(200, "OK", req.target.encode(), "text/plain", req, []))
    elif path == "/peak":
        writer.write(simple(200, "OK", str(INFLIGHT[1]).encode(), "text/plain", req, []))
    elif path == "/slow":
        ms = int(req.query.get("ms", ["100"])[0])
        await asyncio.sleep(ms / 1000)
        out = json.dumps({"slept_ms": ms}).encode()
        writer.write(simple(200, "OK", out, "application/json", req, []))
    else:
        writer.write(simple(404, "Not Found", b"no such route\n", "text/plain", req, []))
    return True


async def chunked(req: Request, writer: asyncio.StreamWriter) -> None:
    headers = [
        ("Content-Type", "text/plain"),
        ("Transfer-Encoding", "chunked"),
        ("Trailer", CHUNK_TRAILER[0]),
    ]
    if not req.keep_alive:
        headers.append(("Connection", "close"))
    writer.write(head(200, "OK", headers))
    if req.method == "HEAD":
        return
    for piece in CHUNKS:
        writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        await writer.drain()
        await asyncio.sleep(0.01)  # separate chunks on the wire
    writer.write(f"0\r\n{CHUNK_TRAILER[0]}: {CHUNK_TRAILER[1]}\r\n\r\n".encode())


async def big(req: Request, writer: asyncio.StreamWriter) -> None:
    mb = int(req.query.get("mb", ["1"])[0])
    headers = [("Content-Type", "application/octet-stream"), ("Content-Length", str(mb * MIB))]
    if not req.keep_alive:
        headers.append(("Connection", "close"))
    writer.write(head(200, "OK", headers))
    if req.method == "HEAD":
        return
    for i in range(mb):
        writer.write(big_chunk(i))
        await writer.drain()


async def websocket(
    req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> bool:
    if "websocket" not in req.tokens("upgrade") or "upgrade" not in req.tokens("connection"):
        refusal = simple(426, "Upgrade Required", b"use websocket\n", "text/plain", req, [])
        writer.write(refusal)
        return True
    headers = [("Upgrade", "websocket"), ("Connection", "Upgrade")]
    key = req.header("sec-websocket-key")
    if key:
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        headers.append(("Sec-WebSocket-Accept", accept))
    writer.write(head(101, "Switching Protocols", headers))
    await writer.drain()
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    return False


async def main(port: int) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", port, limit=MAX_HEAD)
    print(f"rawapp: listening on 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parser.parse_args().port))
