"""The inbound record proxy's HTTP/1.1 handling, through the real ``wiretape record`` CLI.

Each test runs ``wiretape record`` as a subprocess in front of ``tests/apps/rawapp.py`` (an
HTTP/1.1 server on raw asyncio streams), talks to the proxy over plain sockets so that every
byte the client receives can be checked, then stops wiretape with a signal and inspects the
recorded set: the loaded ``TestSet`` and, where the stored form matters, the YAML text.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import brotli
import pytest
import yaml
from tests.apps import rawapp
from tests.helpers.procs import REPO_ROOT, free_port
from tests.helpers.wt import Recording, load, write_config

from wiretape.model import BlobRef, HttpRequest, HttpResponse, TestCase, body_bytes, header_get
from wiretape.store.reader import TestSet

pytestmark = pytest.mark.integration

IO_TIMEOUT = 15.0
MIB = 1 << 20
HELLO_RAW = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n"
    b'{"hello":"world"}'
)


# --- a byte-exact HTTP/1.1 client on a plain socket -------------------------------------------


@dataclass
class Resp:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    trailers: list[tuple[str, str]] = field(default_factory=list)
    raw: bytes = b""  # every byte of this response as it arrived (head, framing, body)

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


class RawConn:
    """One client connection to the record proxy. Every read has a deadline."""

    def __init__(self, port: int, timeout: float = IO_TIMEOUT) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self.buf = bytearray()

    def __enter__(self) -> RawConn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no complete answer in time; have {bytes(self.buf[:300])!r}")
        self.sock.settimeout(remaining)
        data = self.sock.recv(1 << 20)
        if not data:
            return False
        self.buf += data
        return True

    def _take(self, n: int) -> bytes:
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_until(self, sep: bytes, deadline: float, limit: int = 1 << 20) -> bytes:
        while (idx := self.buf.find(sep)) < 0:
            if len(self.buf) > limit:
                raise AssertionError(f"no {sep!r} within {limit} bytes: {bytes(self.buf[:300])!r}")
            if not self._fill(deadline):
                raise EOFError(f"connection closed before {sep!r}; got {bytes(self.buf)!r}")
        return self._take(idx + len(sep))

    def read_exact(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise EOFError(f"connection closed after {len(self.buf)} of {n} bytes")
        return self._take(n)

    def read_to_eof(self, deadline: float, limit: int = 16 * MIB) -> bytes:
        while self._fill(deadline):
            if len(self.buf) > limit:
                raise AssertionError(f"more than {limit} bytes and no end of stream")
        return self._take(len(self.buf))

    def is_closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True once the peer has closed (EOF or reset) within ``timeout`` and sent nothing more."""
        deadline = time.monotonic() + timeout
        try:
            while self._fill(deadline):
                pass
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
        return True

    def read_response(self, method: str = "GET", timeout: float | None = None) -> Resp:
        """One response, de-chunked, with the exact bytes that made it up in ``raw``."""
        deadline = time.monotonic() + (timeout or self.timeout)
        head = self.read_until(b"\r\n\r\n", deadline)
        lines = head[:-4].decode("latin-1").split("\r\n")
        version, status, reason = [*lines[0].split(" ", 2), ""][:3]
        assert version.startswith("HTTP/1."), f"not an HTTP response: {head!r}"
        headers = [(k.strip(), v.strip()) for k, _, v in (ln.partition(":") for ln in lines[1:])]
        resp = Resp(int(status), reason, headers, raw=head)
        code = resp.status
        if method == "HEAD" or code < 200 or code in (204, 304):
            return resp
        if "chunked" in (resp.header("transfer-encoding") or "").lower():
            parts = []
            while True:
                size_line = self.read_until(b"\r\n", deadline)
                resp.raw += size_line
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    break
                data = self.read_exact(size + 2, deadline)
                resp.raw += data
                assert data.endswith(b"\r\n"), f"chunk without CRLF: {data[-10:]!r}"
                parts.append(data[:-2])
            while (line := self.read_until(b"\r\n", deadline)) != b"\r\n":
                resp.raw += line
                name, _, value = line.decode("latin-1").partition(":")
                resp.trailers.append((name.strip(), value.strip()))
            resp.raw += line
            resp.body = b"".join(parts)
        elif (length := resp.header("content-length")) is not None:
            resp.body = self.read_exact(int(length), deadline)
            resp.raw += resp.body
        else:
            resp.body = self.read_to_eof(deadline)
            resp.raw += resp.body
        return resp


def request(
    method: str, target: str, body: bytes = b"", headers: tuple[tuple[str, str], ...] = ()
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: rawapp.test", *(f"{k}: {v}" for k, v in headers)]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def ok_raw(body: bytes, ctype: str, *extra: tuple[str, str]) -> bytes:
    """The exact bytes rawapp sends for a 200 with a Content-Length."""
    lines = ["HTTP/1.1 200 OK", f"Content-Type: {ctype}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# --- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture
def rec(tmp_path: Path) -> Iterator[Recording]:
    """``wiretape record --set s`` in front of rawapp, started and ready; stopped at the end."""
    port = free_port()
    write_config(
        tmp_path,
        command=f"{sys.executable} -m tests.apps.rawapp --port {port}",
        port=port,
        health="/healthz",
        outbound_http="off",
        extra={"app": {"cwd": str(REPO_ROOT)}},
    )
    with Recording(tmp_path) as recording:
        yield recording


def finish(rec: Recording) -> TestSet:
    """Stop the recording with Ctrl-C, check that it exited cleanly, and load the set."""
    code = rec.stop(signal.SIGINT)
    assert code == 0, rec.describe()
    recorded = load(rec.dir, rec.set_name)
    assert recorded.info.closed, "set.yaml is not marked closed"
    return recorded


def stored_doc(rec: Recording, test: TestCase) -> tuple[str, dict[str, Any]]:
    """The YAML text of a recorded test file and its parsed document."""
    text = (rec.set_path / "tests" / f"{test.id}.yaml").read_text(encoding="utf-8")
    return text, yaml.safe_load(text)


def req_of(test: TestCase) -> HttpRequest:
    return test.request


def resp_of(test: TestCase) -> HttpResponse:
    assert test.response is not None, f"{test.id} has no response (error: {test.error})"
    return test.response


def proc_status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise AssertionError(f"/proc/{pid}/status has no {key}")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def wait_until(what: str, check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting until {what}")
        time.sleep(0.05)


def port_refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            # A closed loopback port can, rarely, accept a connection from itself.
            return bool(sock.getsockname() == sock.getpeername())
    except OSError:
        return True


# --- keep-alive and pipelining ---------------------------------------------------------------


def test_keep_alive_requests_on_one_connection_are_separate_tests_in_order(
    rec: Recording,
) -> None:
    with RawConn(rec.port) as conn:
        conn.send(request("GET", "/hello"))
        assert conn.read_response().raw == HELLO_RAW
        conn.send(request("POST", "/echo", b"ping", (("Content-Type", "text/plain"),)))
        echo = conn.read_response()
        assert echo.raw == ok_raw(b"ping", "text/plain", ("X-Echo-Chunked", "False"))
        conn.send(request("GET", "/slow?ms=20"))
        assert json.loads(conn.read_response().body) == {"slept_ms": 20}
        conn.send(request("GET", "/hello?again=1"))
        assert conn.read_response().raw == HELLO_RAW

    recorded = finish(rec)
    assert [t.id for t in recorded.tests] == [
        "0001-get-hello",
        "0002-post-echo",
        "0003-get-slow",
        "0004-get-hello",
    ]
    assert [req_of(t).target for t in recorded.tests] == [
        "/hello",
        "/echo",
        "/slow?ms=20",
        "/hello?again=1",
    ]
    assert req_of(recorded.tests[1]).body == b"ping"
    assert resp_of(recorded.tests[1]).body == b"ping"
    assert resp_of(recorded.tests[3]).body == b'{"hello":"world"}'
    assert all(t.error is None for t in recorded.tests)


def test_pipelined_requests_are_answered_and_recorded_in_order(rec: Recording) -> None:
    pipeline = (
        request("GET", "/slow?ms=150")
        + request("POST", "/echo", b"second", (("Content-Type", "text/plain"),))
        + request("GET", "/hello")
    )
    with RawConn(rec.port) as conn:
        conn.send(pipeline)  # all three in one sendall
        first, second, third = (conn.read_response() for _ in range(3))

    slow_body = b'{"slept_ms": 150}'
    assert first.raw == ok_raw(slow_body, "application/json")
    assert second.raw == ok_raw(b"second", "text/plain", ("X-Echo-Chunked", "False"))
    assert third.raw == HELLO_RAW

    recorded = finish(rec)
    assert [t.id for t in recorded.tests] == ["0001-get-slow", "0002-post-echo", "0003-get-hello"]
    assert [resp_of(t).body for t in recorded.tests] == [slow_body, b"second", third.body]
    assert req_of(recorded.tests[1]).body == b"second"


# --- chunked bodies and Expect: 100-continue -------------------------------------------------


def test_chunked_response_is_forwarded_untouched_and_recorded_dechunked(rec: Recording) -> None:
    with RawConn(rec.port) as conn:
        conn.send(request("GET", "/chunked"))
        resp = conn.read_response()
        conn.send(request("GET", "/hello"))  # the connection is still in step afterwards
        assert conn.read_response().raw == HELLO_RAW

    expected_raw = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n"
        b"Trailer: X-Checksum\r\n\r\n"
        + b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in rawapp.CHUNKS)
        + b"0\r\nX-Checksum: abc123\r\n\r\n"
    )
    assert resp.raw == expected_raw
    assert resp.body == b"alpha-beta-gamma-delta"
    assert resp.trailers == [("X-Checksum", "abc123")]

    recorded = finish(rec)
    assert [t.id for t in recorded.tests] == ["0001-get-chunked", "0002-get-hello"]
    stored = resp_of(recorded.tests[0])
    assert stored.body == b"alpha-beta-gamma-delta"
    assert stored.trailers == (("X-Checksum", "abc123"),)
    assert header_get(stored.headers, "Transfer-Encoding") == "chunked"
    text, doc = stored_doc(rec, recorded.tests[0])
    assert doc["response"]["body"] == {"text": "alpha-beta-gamma-delta"}, text
    assert doc["response"]["trailers"] == [["X-Checksum", "abc123"]], text


def test_chunked_request_upload_is_forwarded_and_recorded_with_trailers(rec: Recording) -> None:
    pieces = [b"first piece,", b"second \x00 binary \xff piece,", b"x" * 70_000, b"last"]
    whole = b"".join(pieces)
    head = (
        b"POST /sha HTTP/1.1\r\nHost: rawapp.test\r\nTransfer-Encoding: chunked\r\n"
        b"Trailer: X-Upload-Sum\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    with RawConn(rec.port) as conn:
        conn.send(head)
        for piece in pieces:
            conn.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        conn.send(b"0\r\nX-Upload-Sum: 42\r\n\r\n")
        resp = conn.read_response()

    assert resp.status == 200, resp.raw
    assert json.loads(resp.body) == {
        "sha256": hashlib.sha256(whole).hexdigest(),
        "size": len(whole),
        "chunked": True,
        "trailers": [["X-Upload-Sum", "42"]],
    }

    recorded = finish(rec)
    assert [t.id for t in recorded.tests] == ["0001-post-sha"]
    stored = req_of(recorded.tests[0])
    assert body_bytes(stored.body) == whole
    assert stored.trailers == (("X-Upload-Sum", "42"),)
    assert header_get(stored.headers, "Transfer-Encoding") == "chunked"
    assert recorded.tests[0].error is None


def test_expect_100_continue_reaches_the_client_before_it_sends_the_body(
    rec: Recording,
) -> None:
    body = b"sent only after 100 Continue"
    with RawConn(rec.port) as conn:
        conn.send(
            b"POST /echo HTTP/1.1\r\nHost: rawapp.test\r\nContent-Type: text/plain\r\n"
            + f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        interim = conn.read_response(timeout=10)  # the body has not been sent yet
        assert interim.raw == b"HTTP/1.1 100 Continue\r\n\r\n"
        conn.send(body)
        final = conn.read_response()
        assert final.raw == ok_raw(body, "text/plain", ("X-Echo-Chunked", "False"))
        conn.send(request("GET", "/hello"))
        assert conn.read_response().raw == HELLO_RAW

    recorded = finish(rec)
    assert [t.id for t in recorded.tests] == ["0001-post-echo", "0002-get-hello"]
    test = recorded.tests[0]
    assert resp_of(test).status == 200
    assert resp_of(test).body == body
    assert req_of(test).body == body
    assert header_get(req_of(test).headers, "Expect") == "100-continue"


# --- bodiless responses ----------------------------------------------------------------------


def test_head_204_and_304_carry_no_body_and_keep_the_connection_usable(rec: Recording) -> None:
    with RawConn(rec.port) as conn:
        conn.send(request("HEAD", "/hello"))
        head = conn.read_response("HEAD")
        assert head.raw == HELLO_RAW[: HELLO_RAW.index(b"\r\n\r\n") + 4]
        conn.send(request("GET", "/nocontent"))
        assert conn.read_response().raw == b"HTTP/1.1 204 No Content\r\nX-Route: nocontent\r\n\r\n"
        conn.send(request("GET", "/notmodified"))
        assert conn.read_response().raw == (
            b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 17\r\n\r\n'
        )
        conn.send(request("GET", "/hello"))
        assert conn.read_response().raw == HELLO_RAW
        assert conn.buf == b"", "stray bytes after the last response"

    recorded = finish(rec)
    assert [t.id for t in recorded.tests] == [
        "0001-head-hello",
        "0002-get-nocontent",
        "0003-get-notmodified",
        "0004-get-hello",
    ]
    head_t, nocontent, notmodified, hello = (resp_of(t) for t in recorded.tests)
    assert (head_t.status, head_t.body, header_get(head_t.headers, "Content-Length")) == (
        200,
        b"",
        "17",
    )
    assert (nocontent.status, nocontent.body) == (204, b"")
    assert (notmodified.status, notmodified.body) == (304, b"")
    assert hello.body == b'{"hello":"world"}'
    assert all(t.error is None for t in recorded.tests)


# --- content codings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "coding", "raw_body", "decode"),
    [
        ("/gzip", "gzip", rawapp.gzip_body(), gzip.decompress),
        ("/br", "br", rawapp.br_body(), brotli.decompress),
    ],
)
def test_encoded_body_passes_untouched_and_is_stored_raw_with_a_decoded_view(
    rec: Recording,
    route: str,
    coding: str,
    raw_body: bytes,
    decode: Callable[[bytes], bytes],
) -> None:
    with RawConn(rec.port) as conn:
        conn.send(request("GET", route, headers=(("Accept-Encoding", coding),)))
        resp = conn.read_response()

    assert resp.header("Content-Encoding") == coding
    assert resp.body == raw_body  # the compressed bytes, byte for byte
    assert decode(resp.body) == rawapp.compressed_json()

    recorded = finish(rec)
    (test,) = recorded.tests
    assert resp_of(test).body == raw_body
    text, doc = stored_doc(rec, test)
    body = doc["response"]["body"]
    assert body["encoding"] == coding, text
    assert "base64" in body or "file" in body, text
    assert body["decoded"] == {"json": rawapp.COMPRESSED_DOC}, text
    assert "decoded:" in text and "squeeze me" in text


# --- large bodies ----------------------------------------------------------------------------


def test_64mib_download_and_upload_stream_through_in_flat_memory(rec: Recording) -> None:
    mb = 64
    size = mb * MIB
    pid = rec.pid
    # Reset the peak RSS counter (Linux "clear_refs 5"), so VmHWM measures only what follows.
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    baseline_kib = proc_status_kib(pid, "VmRSS")

    download = hashlib.sha256()
    with RawConn(rec.port, timeout=60) as conn:
        conn.send(request("GET", f"/big?mb={mb}"))
        deadline = time.monotonic() + 60
        head = conn.read_until(b"\r\n\r\n", deadline)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n"), head
        assert f"Content-Length: {size}\r\n".encode() in head, head
        received = 0
        while received < size:
            block = conn.read_exact(min(MIB, size - received), deadline)
            download.update(block)
            received += len(block)

        upload = hashlib.sha256()
        conn.send(
            f"POST /sha HTTP/1.1\r\nHost: rawapp.test\r\nContent-Length: {size}\r\n"
            "Content-Type: application/octet-stream\r\n\r\n".encode()
        )
        for i in range(mb):
            block = rawapp.big_chunk(1000 + i)  # differs from the download
            upload.update(block)
            conn.send(block)
        answer = conn.read_response(timeout=60)
    peak_kib = proc_status_kib(pid, "VmHWM")

    expected_download = hashlib.sha256()
    for i in range(mb):
        expected_download.update(rawapp.big_chunk(i))
    assert download.hexdigest() == expected_download.hexdigest()
    assert answer.status == 200, answer.raw[:500]
    assert json.loads(answer.body)["sha256"] == upload.hexdigest()
    assert json.loads(answer.body)["size"] == size

    growth_mib = (peak_kib - baseline_kib) / 1024
    assert growth_mib < 48, (
        f"wiretape's peak RSS grew by {growth_mib:.1f} MiB while streaming 2 x {mb} MiB"
    )

    recorded = finish(rec)
    assert [t.id for t in recorded.tests] == ["0001-get-big", "0002-post-sha"]
    for body, sha, where in (
        (resp_of(recorded.tests[0]).body, expected_download.hexdigest(), "response"),
        (req_of(recorded.tests[1]).body, upload.hexdigest(), "request"),
    ):
        assert isinstance(body, BlobRef), f"the {where} body is not a file body"
        assert (body.sha256, body.size) == (sha, size)
        stored = rec.set_path / "bodies" / sha
        assert stored.stat().st_size == size
        assert sha256_file(stored) == sha
    _, doc = stored_doc(rec, recorded.tests[0])
    assert doc["response"]["body"] == {
        "file": f"bodies/{expected_download.hexdigest()}",
        "size": size,
        "sha256": expected_download.hexdigest(),
    }
    _, doc = stored_doc(rec, recorded.tests[1])
    assert doc["request"]["body"]["file"] == f"bodies/{upload.hexdigest()}"
    leftovers = sorted(p.name for p in (rec.set_path / "bodies").iterdir())
    assert leftovers == sorted({expected_download.hexdigest(), upload.hexdigest()})


# --- upgrades --------------------------------------------------------------------------------


def test_websocket_upgrade_passes_101_and_raw_bytes_both_ways(rec: Recording) -> None:
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    upgrade = request(
        "GET",
        "/ws",
        headers=(("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", key)),
    )
    payloads = [
        b"\x81\x05hello",  # a WebSocket text frame, as bytes
        b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n",  # looks like HTTP; must not be parsed
        bytes(range(256)) * 800,  # 200 KiB of binary
    ]
    with RawConn(rec.port) as ws:
        ws.send(upgrade)
        switched = ws.read_response()
        assert switched.raw == (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        )
        deadline = time.monotonic() + IO_TIMEOUT
        for payload in payloads:
            ws.send(payload)
            assert ws.read_exact(len(payload), deadline) == payload
        # While the tunnel is open, other clients are still served.
        with RawConn(rec.port) as other:
            other.send(request("GET", "/hello"))
            assert other.read_response().raw == HELLO_RAW
        ws.send(b"bye")
        ws.sock.shutdown(socket.SHUT_WR)
        assert ws.read_to_eof(deadline) == b"bye"

    recorded = finish(rec)
    assert [t.id for t in recorded.tests] == ["0001-get-ws", "0002-get-hello"]
    test = recorded.tests[0]
    assert test.upgraded
    assert resp_of(test).status == 101
    assert test.error is None
    text, doc = stored_doc(rec, test)
    assert doc["upgraded"] is True, text


# --- broken peers ----------------------------------------------------------------------------


def test_client_disconnect_mid_body_is_recorded_with_an_error(rec: Recording) -> None:
    with RawConn(rec.port) as conn:
        conn.send(
            b"POST /echo HTTP/1.1\r\nHost: rawapp.test\r\nContent-Length: 1000\r\n\r\n0123456789"
        )
    with RawConn(rec.port) as conn:
        conn.send(request("GET", "/hello"))
        assert conn.read_response().raw == HELLO_RAW

    recorded = finish(rec)
    assert [t.id for t in recorded.tests] == ["0001-post-echo", "0002-get-hello"]
    broken, hello = recorded.tests
    assert broken.error, "the interrupted request was recorded without an error"
    assert req_of(broken).body == b"0123456789"
    assert hello.error is None
    assert resp_of(hello).body == b'{"hello":"world"}'


def test_app_dying_mid_response_closes_the_client_and_is_recorded(rec: Recording) -> None:
    with RawConn(rec.port) as conn:
        conn.send(request("GET", "/break"))
        deadline = time.monotonic() + IO_TIMEOUT
        head = conn.read_until(b"\r\n\r\n", deadline)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 1000" in head
        rest = conn.read_to_eof(deadline)  # the connection closes: the body stays short
        assert rest == b"x" * 500
    with RawConn(rec.port) as conn:
        conn.send(request("GET", "/hello"))
        assert conn.read_response().raw == HELLO_RAW

    recorded = finish(rec)
    assert [t.id for t in recorded.tests] == ["0001-get-break", "0002-get-hello"]
    broken, hello = recorded.tests
    assert broken.error, "the broken response was recorded without an error"
    assert hello.error is None and resp_of(hello).status == 200


def test_malformed_request_gets_400_while_another_connection_keeps_working(
    rec: Recording,
) -> None:
    with RawConn(rec.port) as good:
        good.send(request("GET", "/slow?ms=300"))  # in flight while the bad client arrives
        with RawConn(rec.port) as bad:
            bad.send(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
            rejected = bad.read_response()
            assert bad.is_closed_by_peer(), "the connection stays open after a 400"
        assert json.loads(good.read_response().body) == {"slept_ms": 300}
        good.send(request("GET", "/hello"))
        assert good.read_response().raw == HELLO_RAW

    assert rejected.status == 400
    assert (rejected.header("Content-Type") or "").startswith("text/plain")
    text = rejected.body.decode()
    assert "malformed" in text.lower() and "Bad Header" in text, text

    recorded = finish(rec)
    assert [req_of(t).target for t in recorded.tests] == ["/slow?ms=300", "/hello"]
    assert all(t.error is None for t in recorded.tests)


def test_malformed_response_from_the_app_becomes_an_explained_502(rec: Recording) -> None:
    with RawConn(rec.port) as conn:
        conn.send(request("GET", "/garbage"))
        bad_gateway = conn.read_response()
    with RawConn(rec.port) as conn:
        conn.send(request("GET", "/hello"))
        assert conn.read_response().raw == HELLO_RAW

    recorded = finish(rec)
    assert [t.id for t in recorded.tests] == ["0001-get-garbage", "0002-get-hello"]
    garbage, hello = recorded.tests
    assert garbage.error, "the malformed response was recorded without an error"
    assert hello.error is None

    assert bad_gateway.status == 502
    assert (bad_gateway.header("Content-Type") or "").startswith("text/plain")
    explanation = bad_gateway.body.decode()
    # The app did answer, with a head that is not HTTP: the 502 must say so, not that it was silent.
    assert "malformed" in explanation.lower(), explanation
    assert "malformed" in garbage.error.lower(), garbage.error


# --- stopping --------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_record_cleanly(rec: Recording, sig: signal.Signals) -> None:
    with RawConn(rec.port) as conn:
        conn.send(request("GET", "/hello", headers=(("Connection", "close"),)))
        conn.read_response()
    app_port = int(yaml.safe_load((rec.dir / "wiretape.yaml").read_text())["app"]["port"])

    code = rec.stop(sig, timeout=15)

    assert code == 0, rec.describe()
    set_yaml = (rec.set_path / "set.yaml").read_text()
    assert yaml.safe_load(set_yaml)["closed"] is True, set_yaml
    recorded = load(rec.dir)
    assert recorded.info.closed and recorded.info.ended is not None
    assert [t.id for t in recorded.tests] == ["0001-get-hello"]
    wait_until("the app's port is closed", lambda: port_refuses(app_port))
    wait_until("the proxy's port is closed", lambda: port_refuses(rec.port))
    assert "Traceback" not in rec.output(), rec.output()


def test_sigint_with_an_idle_keep_alive_client_stops_cleanly(rec: Recording) -> None:
    with RawConn(rec.port) as idle:
        idle.send(request("GET", "/hello"))
        assert idle.read_response().raw == HELLO_RAW
        started = time.monotonic()
        code = rec.stop(signal.SIGINT, timeout=15)
        took = time.monotonic() - started
        assert idle.is_closed_by_peer(), "the idle client connection was left open"

    assert code == 0, rec.describe()
    assert took < 10, f"stopping took {took:.1f}s"
    recorded = load(rec.dir)
    assert recorded.info.closed
    assert [t.id for t in recorded.tests] == ["0001-get-hello"]
    assert "Traceback" not in rec.output(), rec.output()


# --- warm connections: the inline path ---------------------------------------------------------
#
# The first request on a client connection opens the proxy's connection to the app. Every later
# one finds it open and is served inline, in the event loop's callbacks, and handed back to the
# connection's task for anything that is not a plain exchange. These tests send a warm-up
# request first so that what follows takes that path.


def warm(conn: RawConn) -> None:
    conn.send(request("GET", "/hello"))
    assert conn.read_response().raw == HELLO_RAW


def test_a_warm_connection_forwards_every_framing_untouched(rec: Recording) -> None:
    with RawConn(rec.port) as conn:
        warm(conn)
        conn.send(request("HEAD", "/hello"))
        head_only = conn.read_response("HEAD")
        conn.send(request("GET", "/nocontent"))
        no_content = conn.read_response()
        conn.send(request("GET", "/notmodified"))
        not_modified = conn.read_response()
        conn.send(request("GET", "/chunked"))  # chunks arrive apart, 10 ms between them
        chunked = conn.read_response()
        conn.send(request("GET", "/hello") + request("GET", "/gzip") + request("GET", "/peak"))
        piped = [conn.read_response() for _ in range(3)]
        conn.send(request("GET", "/hello"))
        assert conn.read_response().raw == HELLO_RAW

    assert head_only.raw == HELLO_RAW[: HELLO_RAW.index(b"\r\n\r\n") + 4]
    assert no_content.status == 204 and no_content.body == b""
    assert not_modified.status == 304 and not_modified.body == b""
    assert chunked.body == b"alpha-beta-gamma-delta"
    assert chunked.trailers == [("X-Checksum", "abc123")]
    assert piped[0].raw == HELLO_RAW
    assert gzip.decompress(piped[1].body) == rawapp.compressed_json()
    assert piped[2].status == 200

    recorded = finish(rec)
    assert [req_of(t).target for t in recorded.tests] == [
        "/hello",
        "/hello",
        "/nocontent",
        "/notmodified",
        "/chunked",
        "/hello",
        "/gzip",
        "/peak",
        "/hello",
    ]
    assert all(t.error is None for t in recorded.tests)
    assert resp_of(recorded.tests[1]).body == b""  # HEAD
    assert resp_of(recorded.tests[4]).body == b"alpha-beta-gamma-delta"
    assert resp_of(recorded.tests[4]).trailers == (("X-Checksum", "abc123"),)


def test_a_warm_connection_hands_uploads_and_slow_readers_to_the_task(rec: Recording) -> None:
    deadline = time.monotonic() + IO_TIMEOUT
    with RawConn(rec.port) as conn:
        warm(conn)
        # Expect: 100-continue: the body follows only once the app said so.
        conn.send(
            b"POST /sha HTTP/1.1\r\nHost: rawapp.test\r\nContent-Length: 6\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        assert conn.read_until(b"\r\n\r\n", deadline) == b"HTTP/1.1 100 Continue\r\n\r\n"
        conn.send(b"abcdef")
        sha = json.loads(conn.read_response().body)
        # A body that arrives in two parts.
        conn.send(b"POST /echo HTTP/1.1\r\nHost: rawapp.test\r\nContent-Length: 10\r\n\r\n01234")
        time.sleep(0.05)
        conn.send(b"56789")
        echo = conn.read_response()
        # 8 MiB to a client that reads nothing for a while: the proxy must stop and wait.
        conn.send(request("GET", "/big?mb=8"))
        time.sleep(0.5)
        big = conn.read_response(timeout=30)
        conn.send(request("GET", "/hello"))
        assert conn.read_response().raw == HELLO_RAW

    assert sha["sha256"] == hashlib.sha256(b"abcdef").hexdigest()
    assert echo.body == b"0123456789"
    assert len(big.body) == 8 * MIB
    assert big.body == b"".join(rawapp.big_chunk(i) for i in range(8))

    recorded = finish(rec)
    assert [req_of(t).target for t in recorded.tests] == [
        "/hello",
        "/sha",
        "/echo",
        "/big?mb=8",
        "/hello",
    ]
    assert all(t.error is None for t in recorded.tests)
    assert req_of(recorded.tests[1]).body == b"abcdef"
    assert req_of(recorded.tests[2]).body == b"0123456789"
    assert resp_of(recorded.tests[2]).body == b"0123456789"
    stored = resp_of(recorded.tests[3]).body
    assert isinstance(stored, BlobRef)
    assert (
        sha256_file(rec.set_path / "bodies" / stored.path) == hashlib.sha256(big.body).hexdigest()
    )


def test_a_warm_connection_upgrades_to_a_websocket(rec: Recording) -> None:
    upgrade = request(
        "GET",
        "/ws",
        headers=(("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", "x")),
    )
    with RawConn(rec.port) as ws:
        warm(ws)
        ws.send(upgrade)
        assert ws.read_response().status == 101
        deadline = time.monotonic() + IO_TIMEOUT
        frame = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"  # raw bytes now, not a request
        ws.send(frame)
        assert ws.read_exact(len(frame), deadline) == frame
        ws.sock.shutdown(socket.SHUT_WR)
        assert ws.read_to_eof(deadline) == b""

    recorded = finish(rec)
    assert [req_of(t).target for t in recorded.tests] == ["/hello", "/ws"]
    assert recorded.tests[1].upgraded and resp_of(recorded.tests[1]).status == 101


def test_an_idle_connection_the_app_closed_is_opened_again(rec: Recording) -> None:
    with RawConn(rec.port) as conn:
        conn.send(request("GET", "/bye"))  # the app answers, then closes its side
        assert conn.read_response().raw == HELLO_RAW
        time.sleep(0.2)
        conn.send(request("GET", "/hello"))
        assert conn.read_response().raw == HELLO_RAW
        conn.send(request("GET", "/bye"))
        assert conn.read_response().raw == HELLO_RAW
        time.sleep(0.2)
        conn.send(request("GET", "/hello"))
        assert conn.read_response().raw == HELLO_RAW

    recorded = finish(rec)
    assert [req_of(t).target for t in recorded.tests] == ["/bye", "/hello", "/bye", "/hello"]
    assert all(t.error is None for t in recorded.tests)


@pytest.mark.parametrize("warm_first", [False, True], ids=["cold", "warm"])
def test_a_malformed_request_body_gets_400_and_the_lane_goes_on(
    rec: Recording, warm_first: bool
) -> None:
    bad = (
        b"POST /echo HTTP/1.1\r\nHost: rawapp.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nnot a chunk\r\n0\r\n\r\n"
    )
    with RawConn(rec.port) as conn:
        if warm_first:
            warm(conn)
        conn.send(bad)
        rejected = conn.read_response()
        assert conn.is_closed_by_peer(), "the connection stays open after a 400"
    with RawConn(rec.port) as other:  # the record lane was released
        other.send(request("GET", "/hello"))
        assert other.read_response(timeout=5).raw == HELLO_RAW

    assert rejected.status == 400
    assert "malformed request body" in rejected.body.decode(), rejected.body
    recorded = finish(rec)
    targets = [req_of(t).target for t in recorded.tests]
    assert targets == ["/hello", "/echo", "/hello"] if warm_first else ["/echo", "/hello"]
    failed = recorded.tests[-2]
    assert failed.error and "malformed request body" in failed.error
    assert resp_of(failed).status == 400


def test_a_warm_connection_explains_broken_answers_from_the_app(rec: Recording) -> None:
    with RawConn(rec.port) as conn:
        warm(conn)
        conn.send(request("GET", "/garbage"))
        bad_gateway = conn.read_response()
    with RawConn(rec.port) as conn:
        warm(conn)
        conn.send(request("GET", "/break"))
        deadline = time.monotonic() + IO_TIMEOUT
        head = conn.read_until(b"\r\n\r\n", deadline)
        assert b"Content-Length: 1000" in head
        assert conn.read_to_eof(deadline) == b"x" * 500
    with RawConn(rec.port) as conn:
        warm(conn)

    assert bad_gateway.status == 502 and "malformed" in bad_gateway.body.decode().lower()
    recorded = finish(rec)
    targets = [req_of(t).target for t in recorded.tests]
    assert targets == ["/hello", "/garbage", "/hello", "/break", "/hello"]
    errors = [t.error for t in recorded.tests]
    assert errors[0] is None and errors[2] is None and errors[4] is None
    assert errors[1] and "malformed" in errors[1]
    assert errors[3] and "broke off" in errors[3]


def test_warm_connections_still_go_through_the_lane_one_at_a_time(rec: Recording) -> None:
    conns = [RawConn(rec.port) for _ in range(6)]
    try:
        for conn in conns:
            warm(conn)
        rounds = 10
        for i in range(rounds):
            for n, conn in enumerate(conns):  # six requests in flight at once
                conn.send(request("GET", f"/inflight?ms=3&c={n}&i={i}"))
            for n, conn in enumerate(conns):
                assert conn.read_response().body == f"/inflight?ms=3&c={n}&i={i}".encode()
        conns[0].send(request("GET", "/peak"))
        peak = conns[0].read_response().body
    finally:
        for conn in conns:
            conn.close()

    assert peak == b"1", f"the app saw {peak!r} requests at once behind the record lane"
    recorded = finish(rec)
    inflight = [t for t in recorded.tests if req_of(t).target.startswith("/inflight")]
    assert len(inflight) == 6 * rounds
    for test in inflight:  # each recorded response belongs to its own request
        assert resp_of(test).body == req_of(test).target.encode()


def test_a_client_leaving_while_its_request_waits_for_the_lane_stalls_nothing(
    rec: Recording,
) -> None:
    with RawConn(rec.port) as slow, RawConn(rec.port) as gone, RawConn(rec.port) as after:
        for conn in (slow, gone, after):
            warm(conn)
        slow.send(request("GET", "/slow?ms=300"))
        time.sleep(0.05)
        gone.send(request("GET", "/hello?gone=1"))
        gone.close()
        after.send(request("GET", "/hello?after=1"))
        assert json.loads(slow.read_response().body) == {"slept_ms": 300}
        assert after.read_response(timeout=5).raw == HELLO_RAW
        after.send(request("GET", "/hello"))
        assert after.read_response(timeout=5).raw == HELLO_RAW

    recorded = finish(rec)
    targets = [req_of(t).target for t in recorded.tests]
    assert targets[3:] == ["/slow?ms=300", "/hello?gone=1", "/hello?after=1", "/hello"]


def test_pipelined_bytes_past_the_buffer_limit_push_back_and_are_all_served(
    rec: Recording,
) -> None:
    padding = ("X-Pad", "p" * 2000)
    count = 200  # about 400 KiB of requests behind one slow one
    with RawConn(rec.port) as conn:
        warm(conn)
        conn.send(request("GET", "/slow?ms=200"))
        conn.send(
            b"".join(request("GET", f"/hello?n={n}", headers=(padding,)) for n in range(count))
        )
        assert json.loads(conn.read_response().body) == {"slept_ms": 200}
        for _ in range(count):
            assert conn.read_response().raw == HELLO_RAW

    recorded = finish(rec)
    targets = [req_of(t).target for t in recorded.tests]
    assert targets == ["/hello", "/slow?ms=200", *(f"/hello?n={n}" for n in range(count))]
