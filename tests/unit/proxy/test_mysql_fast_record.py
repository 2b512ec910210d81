"""The record proxy's parsing: a query read on its own (parsed at once by ``take_query``) and the
same bytes read in other pieces (fed to the parsers) make the same exchanges."""

from __future__ import annotations

import json
from typing import Any

from wiretape.config import DepConfig
from wiretape.model import LinkKind
from wiretape.protocols.mysql.messages import (
    Capability,
    ColumnCount,
    ColumnDefinition,
    EofPacket,
    ErrPacket,
    FieldType,
    OkPacket,
    PrepareOk,
    Query,
    StmtPrepare,
    TextRow,
    encode_payload,
)
from wiretape.protocols.mysql.packets import encode_frames
from wiretape.proxy import mysql as proxy
from wiretape.runner.recorder import Attribution

C = Capability
CAPS = int(C.PROTOCOL_41 | C.SECURE_CONNECTION | C.PLUGIN_AUTH | C.TRANSACTIONS | C.SESSION_TRACK)


class _Recorder:
    def attribute_now(self) -> Attribution:
        return Attribution(None, LinkKind.SESSION)


class _Hooks:
    recorder = _Recorder()
    dep = DepConfig("db", "mysql", "127.0.0.1:1")


def conversation() -> list[tuple[bytes, bytes]]:
    """(client bytes, server bytes) per command."""
    column = ColumnDefinition("app", "t", "t", "id", "id", 63, 11, FieldType.LONG, 0, 0)
    eof = EofPacket(0, 2)

    def reply(*messages: Any) -> bytes:
        return b"".join(
            encode_frames(i + 1, encode_payload(m, CAPS)) for i, m in enumerate(messages)
        )

    def command(message: Any) -> bytes:
        return encode_frames(0, encode_payload(message, CAPS))

    out = []
    for n in range(3):
        out.append(
            (
                command(Query(f"SELECT id FROM t WHERE id = {n}")),
                reply(ColumnCount(1), column, eof, TextRow((str(n).encode(),)), eof),
            )
        )
    out.append((command(Query("UPDATE t SET id = 1")), reply(OkPacket(1, 0, 2, 0, "m"))))
    out.append((command(Query("SELECT nope")), reply(ErrPacket(1146, "no table", "42S02"))))
    out.append(
        (
            command(StmtPrepare("SELECT id FROM t WHERE id = ?")),
            reply(PrepareOk(1, 1, 1), column, eof, column, eof),
        )
    )
    out.append((command(Query("SELECT 1")), reply(ColumnCount(1), column, eof, eof)))
    return out


def record(pieces: list[tuple[bool, bytes]]) -> list[Any]:
    conn = proxy._RecordConnection(_Hooks(), None)  # type: ignore[arg-type]
    conn.caps = CAPS
    for client, data in pieces:
        conn._parse(data, client=client)
    assert conn.parsing
    return [
        json.loads(json.dumps([e.request.data, repr(e.request.key), conn._response(e).data]))
        for e in conn.pending
    ]


def test_a_query_read_alone_records_what_the_same_bytes_in_other_pieces_do() -> None:
    talk = conversation()
    one_by_one = [(side, data) for c, s in talk for side, data in ((True, c), (False, s))]
    client = b"".join(c for c, _ in talk)
    server = b"".join(s for _, s in talk)
    bytewise = [(True, client[i : i + 1]) for i in range(len(client))]
    bytewise += [(False, server[i : i + 1]) for i in range(len(server))]
    # The reply arrives before the parser has seen its command: it waits, then is read.
    early = [(False, talk[0][1]), (True, talk[0][0]), *one_by_one[2:]]
    expected = record(one_by_one)
    assert len(expected) == len(talk)
    assert record(bytewise) == expected
    assert record(early) == expected
    assert record([(True, client), (False, server)]) == expected
