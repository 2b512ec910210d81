"""An HTTP app with values it makes up on every run, for noise-learning tests.

GET /thing answers a stable field, a random nonce and a list whose elements carry random
numbers; GET /call posts values made up on every run to UPSTREAM_URL; GET /fixed never
changes. NOISY_VARIANT=changed changes the stable field (a real change).

Usage: python noisyapp.py PORT
"""

from __future__ import annotations

import datetime
import os
import random
import sys
import uuid

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

STABLE = "changed" if os.environ.get("NOISY_VARIANT") == "changed" else "stable"


async def thing(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "stable": STABLE,
            "nonce": random.randint(0, 10**9),
            "items": [{"name": n, "n": random.randint(0, 10**6)} for n in ("a", "b", "c")],
        }
    )


async def fixed(request: Request) -> JSONResponse:
    at = datetime.datetime.now(datetime.UTC).isoformat()
    return JSONResponse({"v": 1, "stable": STABLE, "at": at})


async def call(request: Request) -> JSONResponse:
    """POST to the upstream (UPSTREAM_URL) a body with values made up on every run."""
    body = {
        "name": "widget",
        "request_id": str(uuid.uuid4()),  # a UUID: matched by kind without a rule
        "nonce": random.randint(0, 10**9),  # needs a request noise rule
    }
    url = os.environ["UPSTREAM_URL"] + f"/items?ts={random.randint(0, 10**9)}"
    async with httpx.AsyncClient(trust_env=False) as client:
        answer = await client.post(url, json=body, timeout=10)
    return JSONResponse({"upstream_status": answer.status_code, "name": answer.json()["name"]})


app = Starlette(routes=[Route("/thing", thing), Route("/fixed", fixed), Route("/call", call)])

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
