"""Mock servers for replay: named dependencies and the forward proxy, answered from recordings.

Each live request is parsed whole, has its credentials replaced by the set's placeholders (as
they were while recording), is normalized and looked up in the ``MockIndex``. A hit is re-encoded
from the recorded response with the real credentials put back; a miss answers ``502`` with an
``X-Wiretape-Miss`` header and is kept by the index so the test fails with an explanation.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable

from wiretape.errors import ProtocolError
from wiretape.match.index import MockIndex
from wiretape.model import (
    Body,
    Headers,
    HttpRequest,
    HttpResponse,
    Miss,
    body_size,
    header_get,
    header_tokens,
)
from wiretape.protocols.http1 import (
    BodyData,
    EndOfMessage,
    Http1Parser,
    Kind,
    Paused,
    RequestHead,
    encode_response,
    is_keep_alive,
)
from wiretape.proxy.httpconn import error_response
from wiretape.proxy.outbound import dep_request, forward_request, split_authority
from wiretape.proxy.streams import ByteStream, PrefixStream, TlsServerStream
from wiretape.proxy.tls import CertificateAuthority
from wiretape.secrets import Secrets

log = logging.getLogger("wiretape.replay")

RequestOf = Callable[[RequestHead, Body, Headers], HttpRequest]


def miss_response(miss: Miss) -> bytes:
    lines = [f"wiretape: no recorded response for {miss.request} (dependency {miss.dep})"]
    if miss.reason:
        lines.append(miss.reason)
    for cand in miss.candidates:
        lines.append(f"closest: {cand.mock_id}: " + "; ".join(cand.differences))
    body = ("\n".join(lines) + "\n").encode("utf-8", "replace")
    header = miss.request.replace("\r", " ").replace("\n", " ")[:200]
    return (
        "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"X-Wiretape-Miss: {header}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1", "replace") + body


def close_delimited(resp: HttpResponse, method: str) -> bool:
    """Whether the encoded response ends only when the connection closes."""
    if method == "HEAD" or resp.status < 200 or resp.status in (204, 304):
        return False
    if header_get(resp.headers, "content-length") is not None:
        return False
    return "chunked" not in header_tokens(resp.headers, "transfer-encoding") and not body_size(
        resp.body
    )


class MockHttpServer:
    """Serves one dependency (or the forward proxy when ``ca`` is given) from ``index``."""

    def __init__(
        self,
        dep: str,
        index: MockIndex,
        *,
        ca: CertificateAuthority | None = None,
        secrets: Secrets | None = None,
        max_body: int = 256 * 1024 * 1024,
    ) -> None:
        self.dep = dep
        self.index = index
        self.ca = ca
        self.secrets = secrets
        self.max_body = max_body

    async def serve(self, client: ByteStream) -> None:
        if self.ca is None:
            await self._session(client, lambda h, b, t: dep_request(h, b, t))
        else:
            await self._session(
                client, lambda h, b, t: forward_request(h, b, t, "http", None), proxy=True
            )

    async def _session(
        self, client: ByteStream, request_of: RequestOf, *, proxy: bool = False
    ) -> None:
        parser = Http1Parser(Kind.REQUEST)
        head: RequestHead | None = None
        parts: list[bytes] = []
        size = 0
        try:
            while True:
                ev = parser.next_event()
                if isinstance(ev, RequestHead):
                    head, parts, size = ev, [], 0
                    if proxy and ev.method == "CONNECT":
                        await self._finish_connect(parser, client, ev)
                        return
                elif isinstance(ev, BodyData):
                    size += len(ev.data)
                    if size > self.max_body:
                        raise ProtocolError(f"request body over {self.max_body} bytes")
                    parts.append(ev.data)
                elif isinstance(ev, EndOfMessage):
                    assert head is not None
                    parser.take_raw()
                    req = request_of(head, b"".join(parts), ev.trailers)
                    keep = self._answer(client, head, req)
                    await client.drain()
                    if not keep:
                        return
                    head = None
                elif isinstance(ev, Paused):
                    parser.resume()
                else:
                    parser.take_raw()
                    data = await client.read()
                    if not data:
                        parser.feed_eof()
                        return
                    parser.feed(data)
        except ProtocolError as exc:
            log.warning("%s: malformed request from the app: %s", self.dep, exc)
            client.write(error_response(400, f"malformed HTTP request: {exc}"))
            await client.drain()

    def _answer(self, client: ByteStream, head: RequestHead, req: HttpRequest) -> bool:
        if self.secrets is not None:
            # Recorded requests hold placeholders where the live one holds credentials.
            req = self.secrets.redact_live(req)
        found = self.index.lookup(self.dep, req)
        if isinstance(found, Miss):
            client.write(miss_response(found))
            return is_keep_alive(head.version, head.headers)
        if found.response is None:
            log.info(
                "%s: %s was recorded as failing (%s); closing", self.dep, req.target, found.error
            )
            return False
        resp = found.response
        assert isinstance(resp, HttpResponse), "an HTTP request matched a non-HTTP mock"
        if self.secrets is not None:
            resp = self.secrets.reveal_response(resp)
        client.write(encode_response(resp, head_only=head.method == "HEAD"))
        return (
            is_keep_alive(head.version, head.headers)
            and is_keep_alive(resp.version, resp.headers)
            and not close_delimited(resp, head.method)
        )

    async def _finish_connect(
        self, parser: Http1Parser, client: ByteStream, head: RequestHead
    ) -> None:
        while not isinstance(parser.next_event(), (EndOfMessage, Paused)):
            pass
        parser.take_raw()
        leftover = parser.take_trailing()
        authority = head.target
        try:
            host, _port = split_authority(authority, 443)
        except ValueError:
            client.write(error_response(400, f"bad CONNECT target {authority!r}"))
            return
        client.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await client.drain()
        first = leftover or await client.read()
        if not first:
            return
        assert self.ca is not None
        lower = authority.lower()
        if first[0] == 0x16:
            tls = TlsServerStream(client, self.ca.server_context(host), first)
            try:
                await tls.handshake()
            except (ssl.SSLError, ConnectionError) as exc:
                log.warning("TLS handshake with the app for %s failed: %s", authority, exc)
                return
            await self._session(tls, lambda h, b, t: forward_request(h, b, t, "https", lower))
        else:
            await self._session(
                PrefixStream(first, client), lambda h, b, t: forward_request(h, b, t, "http", lower)
            )
