"""An app for the concurrent-recording tests: it serves overlapping requests, each of which
calls a dependency, and may pass the inbound W3C ``traceparent`` on to that call.

Run: python tests/apps/tracer.py --port N   (env UPSTREAM_URL: the dependency's base URL)

GET /work/{id}?delay_ms=D&propagate=1 waits D/2 ms, calls UPSTREAM_URL/item/{id} (with the
inbound traceparent when propagate=1), waits D/2 ms again and returns {"id", "upstream"}.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with httpx.AsyncClient(base_url=os.environ["UPSTREAM_URL"], trust_env=False) as client:
        app.state.client = client
        yield


async def work(request: Request) -> JSONResponse:
    item = request.path_params["id"]
    delay = int(request.query_params.get("delay_ms", "0")) / 1000
    headers = {}
    parent = request.headers.get("traceparent")
    if request.query_params.get("propagate") == "1" and parent:
        headers["traceparent"] = parent
    await asyncio.sleep(delay / 2)
    answer = await request.app.state.client.get(f"/item/{item}", headers=headers)
    await asyncio.sleep(delay / 2)
    return JSONResponse({"id": item, "upstream": answer.json()})


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


app = Starlette(routes=[Route("/work/{id}", work), Route("/healthz", healthz)], lifespan=lifespan)

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
