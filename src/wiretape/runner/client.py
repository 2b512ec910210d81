"""The replay client: sends recorded test requests to the app over a kept-alive connection."""

from __future__ import annotations

import asyncio

from wiretape.errors import ProtocolError
from wiretape.model import HttpRequest, HttpResponse
from wiretape.protocols.http1 import (
    BodyData,
    EndOfMessage,
    Http1Parser,
    Informational,
    Kind,
    ResponseHead,
    encode_request,
    is_keep_alive,
)
from wiretape.proxy.streams import SocketStream, open_stream


class ReplayError(Exception):
    pass


class AppClient:
    def __init__(self, host: str, port: int, *, timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._stream: SocketStream | None = None
        self._parser: Http1Parser | None = None

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
        self._stream = None
        self._parser = None

    async def send(self, req: HttpRequest) -> HttpResponse:
        reused = self._stream is not None
        try:
            return await asyncio.wait_for(self._send_once(req), self.timeout)
        except TimeoutError:
            self.close()
            raise ReplayError(f"the app did not answer within {self.timeout:g}s") from None
        except (OSError, ProtocolError, ReplayError) as exc:
            self.close()
            if reused and isinstance(exc, (ConnectionError, _Closed)):
                # A kept-alive connection the app had closed: retry once on a fresh one.
                try:
                    return await asyncio.wait_for(self._send_once(req), self.timeout)
                except TimeoutError:
                    self.close()
                    raise ReplayError(f"the app did not answer within {self.timeout:g}s") from None
                except (OSError, ProtocolError) as exc2:
                    self.close()
                    raise ReplayError(str(exc2)) from None
            raise ReplayError(str(exc)) from None

    async def _send_once(self, req: HttpRequest) -> HttpResponse:
        if self._stream is None:
            self._stream = await open_stream(self.host, self.port)
            self._parser = Http1Parser(Kind.RESPONSE)
        stream, parser = self._stream, self._parser
        assert parser is not None
        parser.expect_response_to(req.method)
        stream.write(encode_request(req))
        await stream.drain()
        head: ResponseHead | None = None
        parts: list[bytes] = []
        got_any = False
        eof = False
        while True:
            ev = parser.next_event()
            if isinstance(ev, ResponseHead):
                head = ev
                if parser.switched:
                    self.close()
                    return HttpResponse(ev.status, ev.reason, ev.headers, b"", ev.version)
            elif isinstance(ev, BodyData):
                parts.append(ev.data)
            elif isinstance(ev, EndOfMessage):
                parser.take_raw()
                assert head is not None
                resp = HttpResponse(
                    head.status,
                    head.reason,
                    head.headers,
                    b"".join(parts),
                    head.version,
                    ev.trailers,
                )
                if not (
                    is_keep_alive(head.version, head.headers)
                    and is_keep_alive(req.version, req.headers)
                ):
                    self.close()
                return resp
            elif isinstance(ev, Informational):
                continue
            else:
                if eof:
                    raise ReplayError("the app closed the connection mid-response")
                parser.take_raw()
                data = await stream.read()
                if not data:
                    if not got_any and head is None:
                        raise _Closed("the app closed the connection without answering")
                    parser.feed_eof()
                    eof = True
                    continue
                got_any = True
                parser.feed(data)


class _Closed(ReplayError):
    pass
