"""An HTTP app whose tokens, ids and cursors are new on every run, for chained-value tests.

- ``POST /login`` answers ``{"token": <random>}``; ``GET /me`` needs ``Authorization: Bearer``
  with a token this process issued (401 otherwise).
- ``POST /notes`` creates a note with a random UUID id; ``GET /notes/{id}`` finds it (404
  otherwise); a ``Set-Cookie: session=<random>`` from /login is required by ``GET /session``.
- ``GET /notes?cursor=C`` pages through the notes two at a time; cursors are random per run.

Usage: python chainapp.py PORT
"""

from __future__ import annotations

import secrets
import sys
import uuid

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TOKENS: set[str] = set()
SESSIONS: set[str] = set()
NOTES: dict[str, str] = {}
CURSORS: dict[str, int] = {}


def authorized(request: Request) -> bool:
    header = request.headers.get("authorization", "")
    return header.startswith("Bearer ") and header.removeprefix("Bearer ") in TOKENS


async def login(request: Request) -> JSONResponse:
    token = secrets.token_urlsafe(24)
    TOKENS.add(token)
    session = secrets.token_hex(12)
    SESSIONS.add(session)
    response = JSONResponse({"token": token, "user": "alice"})
    response.set_cookie("session", session)
    return response


async def me(request: Request) -> JSONResponse:
    if not authorized(request):
        return JSONResponse({"error": "unauthorized"}, status_code=401)
    return JSONResponse({"user": "alice"})


async def session(request: Request) -> JSONResponse:
    if request.cookies.get("session") not in SESSIONS:
        return JSONResponse({"error": "no session"}, status_code=401)
    return JSONResponse({"session": "ok"})


async def create_note(request: Request) -> JSONResponse:
    if not authorized(request):
        return JSONResponse({"error": "unauthorized"}, status_code=401)
    body = await request.json()
    note_id = str(uuid.uuid4())
    NOTES[note_id] = body["text"]
    return JSONResponse({"id": note_id, "text": body["text"]}, status_code=201)


async def get_note(request: Request) -> JSONResponse:
    note = NOTES.get(request.path_params["note_id"])
    if note is None:
        return JSONResponse({"error": "not found"}, status_code=404)
    return JSONResponse({"text": note})


async def list_notes(request: Request) -> JSONResponse:
    cursor = request.query_params.get("cursor")
    start = 0
    if cursor is not None:
        if cursor not in CURSORS:
            return JSONResponse({"error": "bad cursor"}, status_code=400)
        start = CURSORS[cursor]
    texts = sorted(NOTES.values())
    page = texts[start : start + 2]
    out: dict[str, object] = {"notes": page}
    if start + 2 < len(texts):
        following = secrets.token_hex(10)
        CURSORS[following] = start + 2
        out["next_cursor"] = following
    return JSONResponse(out)


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


app = Starlette(
    routes=[
        Route("/health", health),
        Route("/login", login, methods=["POST"]),
        Route("/me", me),
        Route("/session", session),
        Route("/notes", create_note, methods=["POST"]),
        Route("/notes", list_notes, methods=["GET"]),
        Route("/notes/{note_id}", get_note),
    ]
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
