"""The Redis mock server's quick path: equal small answers encoded once, and the answers to one
read written at once (the fuzz tests check it answers as without its caches)."""

from __future__ import annotations

import asyncio

from wiretape.config import DepConfig
from wiretape.match.index import MockIndex
from wiretape.model import Mock, WireResponse
from wiretape.protocols.redis import encode_command
from wiretape.protocols.redis_exchange import Requests
from wiretape.proxy.redis import RedisMockServer
from wiretape.proxy.streams import MemoryStream, memory_pair

SET = encode_command([b"SET", b"key:1", b"xxx"])


def mock(i: int, args: list[bytes], data: object) -> Mock:
    request = Requests().request(args)
    return Mock(f"cache-{i:04d}", "cache", "redis", request, WireResponse(data), None)


def test_equal_small_answers_are_encoded_once() -> None:
    mocks = [mock(i, [b"GET", b"k"], {"reply": "v"}) for i in range(3)]
    bad = [mock(3 + i, [b"GET", b"k"], {"reply": {"bogus": "x"}}) for i in range(2)]
    server = RedisMockServer(DepConfig("cache", "redis", "127.0.0.1:1"), MockIndex(mocks, {}))
    first = server.prepared(mocks[0])
    assert all(server.prepared(m) is first for m in mocks)
    assert [server.prepared(m) for m in bad] == [
        "the recorded answer of cache-0003 is invalid: response.reply: unknown RESP value with "
        "keys bogus",
        "the recorded answer of cache-0004 is invalid: response.reply: unknown RESP value with "
        "keys bogus",
    ]


class Counting(MemoryStream):
    """The server's end of a memory pair, counting its writes."""

    writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        super().write(data)


def test_the_answers_to_one_read_go_out_in_one_write() -> None:
    mocks = [mock(i, [b"SET", b"key:1", b"xxx"], {"reply": {"simple": "OK"}}) for i in range(16)]
    index = MockIndex(mocks, {})
    index.begin_test(None)
    server = RedisMockServer(DepConfig("cache", "redis", "127.0.0.1:1"), index)

    async def run() -> tuple[bytes, int]:
        client, _ = memory_pair("client", "unused")
        ours = Counting("mock")
        client._peer, ours._peer = ours, client
        client.write(SET * 16)
        client.write_eof()
        await server.serve(ours)
        ours.close()
        received = b""
        while data := await client.read():
            received += data
        return received, ours.writes

    received, writes = asyncio.run(run())
    assert received == b"+OK\r\n" * 16
    assert writes == 1
    assert index.misses(None) == []


def test_every_answer_is_prepared_before_the_first_connection() -> None:
    import dataclasses

    mocks = [mock(i, [b"GET", b"k"], {"reply": f"v{i}"}) for i in range(3)]
    elsewhere = dataclasses.replace(mock(9, [b"GET", b"k"], {"reply": "x"}), dep="other")
    in_test = dataclasses.replace(mock(5, [b"GET", b"t"], {"reply": "t"}), test="0001-get")
    index = MockIndex([*mocks, elsewhere], {"0001-get": [in_test]})
    server = RedisMockServer(DepConfig("cache", "redis", "127.0.0.1:1"), index)
    kept = server._prepared
    assert set(kept) == {id(m) for m in [*mocks, in_test]}  # not the other dependency's
    assert [server.prepared(m) for m in mocks] == [kept[id(m)] for m in mocks]
    frames = [server.prepared(m) for m in [*mocks, in_test]]
    assert [getattr(f, "frames", None) for f in frames] == [
        b"$2\r\nv0\r\n",
        b"$2\r\nv1\r\n",
        b"$2\r\nv2\r\n",
        b"$1\r\nt\r\n",
    ]
    other = server.prepared(elsewhere)  # not kept by identity, still answered
    assert getattr(other, "frames", None) == b"$1\r\nx\r\n"
    assert id(elsewhere) not in kept
