"""Request noise for HTTP calls: parts of an outgoing request that the app makes up on every run.

Two mechanisms, both applied to the request's match key only (the stored request is unchanged):

- **Rules** name the parts to ignore, in the noise-path syntax rooted at the request: a JSON body
  path (``body.request_id``, ``body.items[*].nonce``, ``body..trace``) or a query parameter
  (``query.ts``). They come from ``request_noise:`` in ``wiretape.yaml`` (every HTTP dependency)
  and ``deps.NAME.request_noise`` (one dependency).
- **Typed values** need no rule: when no recording has the exact key, a *loose* key where every
  JSON string and query value that is a UUID, a timestamp, a JWT or an opaque token stands for
  its kind (``compare.values.kind_token``) finds the recording that differs only in such values,
  as response comparison does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from wiretape.compare.noise import Noise, compile_noise
from wiretape.compare.values import kind_token
from wiretape.match.keys import HttpKey, body_view, http_key
from wiretape.model import HttpRequest

__all__ = ["HttpRules", "check_request_path", "keys_of"]

QUERY = "query."
_NOISE = "<noise>"


def check_request_path(text: str) -> None:
    """Raise ``ValueError`` unless ``text`` is a request noise path (``body...`` or ``query.X``)."""
    text = text.strip()
    if text.startswith(QUERY):
        if not text[len(QUERY) :]:
            raise ValueError("query. needs a parameter name, e.g. query.ts")
        return
    if not (text == "body" or text.startswith(("body.", "body[", "body.."))):
        raise ValueError("a request noise path starts with body or query.")
    compile_noise([text])


@dataclass(frozen=True, slots=True)
class HttpRules:
    body: Noise
    query: frozenset[str]

    @classmethod
    def of(cls, texts: tuple[str, ...]) -> HttpRules | None:
        if not texts:
            return None
        query = frozenset(t.strip()[len(QUERY) :] for t in texts if t.strip().startswith(QUERY))
        body = compile_noise([t for t in texts if not t.strip().startswith(QUERY)])
        return cls(body, query)


def _walk(value: object, at: tuple[str | int, ...], rules: Noise | None, loosen: bool) -> object:
    if rules is not None and rules and rules.hides(at):
        return _NOISE
    if isinstance(value, dict):
        return {k: _walk(v, (*at, k), rules, loosen) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, (*at, i), rules, loosen) for i, v in enumerate(value)]
    if loosen and isinstance(value, str):
        token = kind_token(value)
        if token is not None:
            return {"~": token}
    return value


def _query(
    pairs: tuple[tuple[str, str], ...], names: frozenset[str], loosen: bool
) -> tuple[tuple[str, str], ...]:
    out = []
    for name, value in pairs:
        if name in names:
            value = _NOISE
        elif loosen:
            token = kind_token(value)
            if token is not None:
                value = "~" + token
        out.append((name, value))
    return tuple(out)


def keys_of(dep: str, req: HttpRequest, rules: HttpRules | None) -> tuple[HttpKey, HttpKey | None]:
    """The exact key (with ``rules`` applied) and the loose key (None when it is the same)."""
    view = body_view(req)
    key = http_key(dep, req, view)
    json_body = view.kind == "json"
    if rules is not None:
        body = key.body
        if json_body and rules.body:
            masked = _walk(view.value, ("body",), rules.body, loosen=False)
            body = "json:" + json.dumps(masked, sort_keys=True, separators=(",", ":"))
        key = key._replace(body=body, query=_query(key.query, rules.query, loosen=False))
    names = rules.query if rules is not None else frozenset()
    loose_query = _query(key.query, names, loosen=True)
    same = loose_query == key.query
    loose_body = key.body
    if json_body:
        body_rules = rules.body if rules is not None else None
        loosened = _walk(view.value, ("body",), body_rules, loosen=True)
        if loosened != _walk(view.value, ("body",), body_rules, loosen=False):
            same = False
            loose_body = "json~:" + json.dumps(loosened, sort_keys=True, separators=(",", ":"))
    return key, None if same else key._replace(body=loose_body, query=loose_query)
