"""Write a mitmproxy flows file with N recorded GET /item/<i> exchanges (for ``mitmdump -S``).

Runs with the mitmproxy venv's Python (bench/.work/mitm-venv), not the project's:
    bench/.work/mitm-venv/bin/python bench/peers/mitm_flows.py N OUT HOST PORT
HOST:PORT is the upstream the flows claim to come from (mitmdump's reverse target).
The responses are byte-for-byte the bodies of bench/mockserve.py's ``item_body``.
"""

from __future__ import annotations

import json
import sys
import time

from mitmproxy import connection, http, io


def item_body(i: int) -> bytes:
    # Keep in sync with bench/mockserve.py:item_body.
    doc = {"id": i, "name": f"item {i}", "price_cents": 100 + i % 900, "currency": "EUR"}
    return json.dumps(doc, separators=(",", ":")).encode()


def main() -> None:
    n, out, host, port = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    now = time.time()
    client = connection.Client(
        peername=("127.0.0.1", 40000), sockname=("127.0.0.1", 8080), timestamp_start=now
    )
    server = connection.Server(address=(host, port))
    with open(out, "wb") as fh:
        writer = io.FlowWriter(fh)
        for i in range(1, n + 1):
            req = http.Request.make(
                "GET", f"http://{host}:{port}/item/{i}", b"", {"Host": f"{host}:{port}"}
            )
            req.timestamp_start = req.timestamp_end = now
            body = item_body(i)
            resp = http.Response.make(200, body, {"Content-Type": "application/json"})
            resp.timestamp_start = resp.timestamp_end = now
            flow = http.HTTPFlow(client, server)
            flow.request = req
            flow.response = resp
            writer.add(flow)


if __name__ == "__main__":
    main()
