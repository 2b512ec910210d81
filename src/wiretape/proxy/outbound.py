"""Outbound HTTP: a reverse proxy per named dependency and an intercepting forward proxy.

A named dependency (``protocol: http``) listens on its own loopback port; the app calls it
instead of the real service and every request is forwarded to the configured upstream, with the
``Host`` header and the optional path prefix rewritten.

The forward proxy is what ``HTTP_PROXY``/``HTTPS_PROXY`` point at. Plain requests arrive in
absolute form. ``CONNECT`` tunnels are answered by wiretape itself: when the client then starts
TLS, wiretape terminates it with a certificate minted for the requested host and signed by the
installation CA, and parses the HTTP inside; a tunnel that carries neither TLS nor HTTP is
passed through untouched.
"""

from __future__ import annotations

import logging
import ssl
from urllib.parse import urlsplit

from wiretape.model import Body, Headers, HttpRequest
from wiretape.protocols.http1 import RequestHead, encode_request_head
from wiretape.proxy.httpconn import (
    BodySink,
    Finished,
    HttpSession,
    Route,
    RouteError,
    pipe_both,
)
from wiretape.proxy.streams import ByteStream, PrefixStream, TlsServerStream, open_stream
from wiretape.proxy.tls import CertificateAuthority
from wiretape.runner.recorder import Attribution, Recorder

log = logging.getLogger("wiretape.proxy")

HOP_BY_HOP_PROXY = frozenset({"proxy-connection", "proxy-authorization"})
HTTP_METHOD_PREFIXES = (b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE", b"PATC", b"OPTI", b"TRAC")


def split_authority(authority: str, default_port: int) -> tuple[str, int]:
    """``host[:port]`` (IPv6 in brackets) → (host, port)."""
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise ValueError(f"bad authority {authority!r}")
        host = authority[1:end]
        rest = authority[end + 1 :]
        port = int(rest[1:]) if rest.startswith(":") else default_port
        return host, port
    if authority.count(":") == 1:
        host, port_s = authority.split(":")
        return host, int(port_s)
    return authority, default_port


def replace_host(headers: Headers, value: str) -> Headers:
    out: list[tuple[str, str]] = []
    seen = False
    for name, v in headers:
        if name.lower() == "host":
            if not seen:
                out.append((name, value))
                seen = True
            continue
        out.append((name, v))
    if not seen:
        out.insert(0, ("Host", value))
    return tuple(out)


class _RecordingHooks:
    """Admission and recording shared by the outbound proxies."""

    takes_connect = False

    def __init__(self, recorder: Recorder, dep: str) -> None:
        self.recorder = recorder
        self.dep = dep

    async def admit(self, head: RequestHead) -> object:
        return self.recorder.attribute(head.headers)

    def new_sink(self) -> BodySink:
        return self.recorder.new_sink()

    async def finished(self, ticket: object, done: Finished) -> None:
        assert isinstance(ticket, Attribution)
        await self.recorder.add_mock(self.dep, "http", ticket, done)

    async def connect(self, head: RequestHead, client: ByteStream, leftover: bytes) -> None:
        raise AssertionError("not a forward proxy")


class DepHooks(_RecordingHooks):
    """Reverse proxy for one named ``protocol: http`` dependency."""

    def __init__(
        self,
        recorder: Recorder,
        dep: str,
        upstream: str,
        *,
        client_tls: ssl.SSLContext | None,
    ) -> None:
        super().__init__(recorder, dep)
        url = urlsplit(upstream)
        self.scheme = url.scheme
        self.host, self.port = split_authority(url.netloc, 443 if url.scheme == "https" else 80)
        self.prefix = url.path.rstrip("/")
        default = 443 if url.scheme == "https" else 80
        self.host_header = url.netloc if self.port != default else self.host
        self.tls = client_tls if url.scheme == "https" else None
        self.key = ("dep", self.host, self.port, self.scheme)

    def route(self, head: RequestHead, ticket: object) -> Route:
        target = head.target
        if not target.startswith("/"):
            url = urlsplit(target)
            target = (url.path or "/") + (f"?{url.query}" if url.query else "")
        new_head = encode_request_head(
            head.method,
            self.prefix + target,
            replace_host(head.headers, self.host_header),
            head.version,
        )
        return Route(
            self.key,
            self.host,
            self.port,
            tls=self.tls,
            server_hostname=self.host if self.tls else None,
            head=new_head,
        )

    def request_of(self, head: RequestHead, body: Body, trailers: Headers) -> HttpRequest:
        return dep_request(head, body, trailers)

    async def serve(self, client: ByteStream) -> None:
        await HttpSession(client, self).run()


def origin_form(target: str) -> tuple[str, str, str]:
    """An absolute-form target → (scheme, authority, origin-form target)."""
    url = urlsplit(target)
    if url.scheme not in ("http", "https") or not url.netloc:
        raise RouteError(400, f"a forward proxy needs an absolute http URL, got {target!r}")
    path = url.path or "/"
    return url.scheme, url.netloc, path + (f"?{url.query}" if url.query else "")


def dep_request(head: RequestHead, body: Body, trailers: Headers) -> HttpRequest:
    """The recorded form of a request the app sent to a named dependency."""
    return HttpRequest(
        method=head.method,
        target=head.target,
        headers=head.headers,
        body=body,
        version=head.version,
        trailers=trailers,
    )


def forward_request(
    head: RequestHead,
    body: Body,
    trailers: Headers,
    scheme: str,
    authority: str | None,
) -> HttpRequest:
    """The recorded form of a request sent through the forward proxy (or inside its tunnel)."""
    target = head.target
    if authority is None:
        try:
            scheme, authority, target = origin_form(head.target)
        except RouteError:
            authority = ""
    headers = tuple(h for h in head.headers if h[0].lower() not in HOP_BY_HOP_PROXY)
    return HttpRequest(
        method=head.method,
        target=target,
        headers=headers,
        body=body,
        version=head.version,
        scheme=scheme,
        host=authority.lower(),
        trailers=trailers,
    )


class ForwardProxyHooks(_RecordingHooks):
    """The HTTP(S)_PROXY endpoint. ``authority`` is set inside an intercepted tunnel."""

    def __init__(
        self,
        recorder: Recorder,
        ca: CertificateAuthority,
        client_tls: ssl.SSLContext,
        *,
        dep: str = "outbound",
        scheme: str = "http",
        authority: str | None = None,
    ) -> None:
        super().__init__(recorder, dep)
        self.ca = ca
        self.client_tls = client_tls
        self.scheme = scheme
        self.authority = authority
        self.takes_connect = authority is None

    def _split(self, head: RequestHead) -> tuple[str, str, str]:
        if self.authority is not None:
            return self.scheme, self.authority, head.target
        return origin_form(head.target)

    def route(self, head: RequestHead, ticket: object) -> Route:
        scheme, authority, target = self._split(head)
        try:
            host, port = split_authority(authority, 443 if scheme == "https" else 80)
        except ValueError as exc:
            raise RouteError(400, str(exc)) from None
        headers = tuple(h for h in head.headers if h[0].lower() not in HOP_BY_HOP_PROXY)
        tls = self.client_tls if scheme == "https" else None
        return Route(
            ("fwd", host, port, scheme),
            host,
            port,
            tls=tls,
            server_hostname=host if tls else None,
            head=encode_request_head(head.method, target, headers, head.version),
        )

    def request_of(self, head: RequestHead, body: Body, trailers: Headers) -> HttpRequest:
        return forward_request(head, body, trailers, self.scheme, self.authority)

    async def connect(self, head: RequestHead, client: ByteStream, leftover: bytes) -> None:
        authority = head.target
        try:
            host, port = split_authority(authority, 443)
        except ValueError:
            client.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await client.drain()
            return
        client.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await client.drain()
        first = leftover or await client.read()
        if not first:
            return
        if first[0] == 0x16:
            tls = TlsServerStream(client, self.ca.server_context(host), first)
            try:
                await tls.handshake()
            except (ssl.SSLError, ConnectionError) as exc:
                log.warning("TLS handshake with the app for %s failed: %s", authority, exc)
                return
            inner = ForwardProxyHooks(
                self.recorder,
                self.ca,
                self.client_tls,
                dep=self.dep,
                scheme="https",
                authority=authority,
            )
            await HttpSession(tls, inner).run()
            return
        if first.startswith(HTTP_METHOD_PREFIXES):
            inner = ForwardProxyHooks(
                self.recorder,
                self.ca,
                self.client_tls,
                dep=self.dep,
                scheme="http",
                authority=authority,
            )
            await HttpSession(PrefixStream(first, client), inner).run()
            return
        log.info("CONNECT %s carries neither TLS nor HTTP; tunnelled untouched", authority)
        try:
            upstream = await open_stream(host, port)
        except OSError as exc:
            log.warning("CONNECT %s: %s", authority, exc)
            return
        upstream.write(first)
        await pipe_both(client, upstream)

    async def serve(self, client: ByteStream) -> None:
        await HttpSession(client, self).run()
