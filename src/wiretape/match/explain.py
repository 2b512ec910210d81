"""Explain a miss: which recorded requests come closest to a live one, and how each differs.

How this works: each candidate gets a similarity score from 0 to 1, a weighted sum over the parts
of the match key (method and path dominate; then query, body, host and scheme), scaled down when
the candidate belongs to another dependency. The parts other than the body are cheap, so they are
scored for every candidate first; bodies (which may need parsing, or reading from a blob file) are
scored in order of the best possible total, stopping once no remaining candidate can beat the
current top ``limit``. Differences are written out only for the candidates returned.
"""

from __future__ import annotations

import difflib
import heapq
import json
from collections.abc import Sequence
from typing import NamedTuple

from wiretape.match.keys import (
    BodyView,
    body_view,
    normalize_host,
    normalize_path,
    normalize_query,
)
from wiretape.model import Candidate, HttpRequest, Mock, WireRequest

__all__ = ["closest", "closest_wire"]

W_METHOD = 0.30
W_PATH = 0.30
W_QUERY = 0.15
W_BODY = 0.15
W_HOST = 0.07
W_SCHEME = 0.03
OTHER_DEP_FACTOR = 0.8
MAX_BODY_LINES = 5
_SHOW_MAX = 60

Pairs = tuple[tuple[str, str], ...]


class _Facts(NamedTuple):
    """The cheap, normalized parts of a request."""

    dep: str
    method: str
    scheme: str
    host: str
    path: str
    segments: tuple[str, ...]
    query: Pairs


def _facts(dep: str, req: HttpRequest) -> _Facts:
    scheme = req.scheme.lower()
    path = normalize_path(req.path)
    return _Facts(
        dep=dep,
        method=req.method.upper(),
        scheme=scheme,
        host=normalize_host(scheme, req.host),
        path=path,
        segments=tuple(path.strip("/").split("/")),
        query=normalize_query(req.query),
    )


def _http_request(mock: Mock) -> HttpRequest:
    assert isinstance(mock.request, HttpRequest)
    return mock.request


def closest(
    req: HttpRequest, dep: str, candidates: Sequence[Mock], *, limit: int = 3
) -> tuple[Candidate, ...]:
    """The ``limit`` candidates most similar to ``req``, best first; ties keep recorded order."""
    candidates = [m for m in candidates if isinstance(m.request, HttpRequest)]
    if limit <= 0 or not candidates:
        return ()
    live = _facts(dep, req)
    live_body: list[BodyView] = []

    def live_view() -> BodyView:
        if not live_body:
            live_body.append(body_view(req))
        return live_body[0]

    cheap: list[tuple[float, float, int]] = []  # (upper bound, cheap score, position)
    for pos, mock in enumerate(candidates):
        factor = 1.0 if mock.dep == dep else OTHER_DEP_FACTOR
        score = _cheap_score(live, _facts(mock.dep, _http_request(mock))) * factor
        cheap.append((score + W_BODY * factor, score, pos))
    cheap.sort(key=lambda item: (-item[0], item[2]))

    best: list[tuple[float, int]] = []  # min-heap of (score, -position): the worst best on top
    for upper, score, pos in cheap:
        if len(best) >= limit and upper < best[0][0]:
            break
        mock = candidates[pos]
        factor = 1.0 if mock.dep == dep else OTHER_DEP_FACTOR
        body_sim = _body_similarity(body_view(_http_request(mock)), live_view())
        entry = (score + W_BODY * body_sim * factor, -pos)
        if len(best) < limit:
            heapq.heappush(best, entry)
        elif entry > best[0]:
            heapq.heapreplace(best, entry)

    out = []
    for score, neg_pos in sorted(best, reverse=True):
        pos = -neg_pos
        mock = candidates[pos]
        rec = _facts(mock.dep, _http_request(mock))
        diffs = _differences(rec, live, body_view(_http_request(mock)), live_view())
        out.append(Candidate(mock_id=mock.id, score=round(min(score, 1.0), 3), differences=diffs))
    return tuple(out)


def _wire_request(mock: Mock) -> WireRequest:
    assert isinstance(mock.request, WireRequest)
    return mock.request


def closest_wire(
    req: WireRequest, candidates: Sequence[Mock], *, limit: int = 3
) -> tuple[Candidate, ...]:
    """The ``limit`` database or TCP requests whose summaries are most like ``req``'s.

    Summaries are one line each (a statement and its parameters, a command and its arguments),
    so the similarity of the two texts is a fair measure; the difference shows the recorded one.
    """
    wire = [m for m in candidates if isinstance(m.request, WireRequest)]
    if limit <= 0 or not wire:
        return ()
    scored: list[tuple[float, int]] = []
    for pos, mock in enumerate(wire):
        matcher = difflib.SequenceMatcher(None, _wire_request(mock).summary, req.summary)
        if matcher.real_quick_ratio() == 0.0:
            scored.append((0.0, pos))
            continue
        scored.append((matcher.ratio(), pos))
    scored.sort(key=lambda item: (-item[0], item[1]))
    out = []
    for score, pos in scored[:limit]:
        mock = wire[pos]
        recorded = _wire_request(mock).summary
        out.append(
            Candidate(
                mock_id=mock.id,
                score=round(score, 3),
                differences=(f"recorded {_show_text(recorded)}, live {_show_text(req.summary)}",),
            )
        )
    return tuple(out)


def _show_text(text: str) -> str:
    return repr(text if len(text) <= 2 * _SHOW_MAX else text[: 2 * _SHOW_MAX] + "...")


def _cheap_score(live: _Facts, rec: _Facts) -> float:
    score = 0.0
    if live.method == rec.method:
        score += W_METHOD
    if live.scheme == rec.scheme:
        score += W_SCHEME
    if live.host == rec.host:
        score += W_HOST
    score += W_PATH * _segment_similarity(rec.segments, live.segments)
    score += W_QUERY * _pairs_similarity(rec.query, live.query)
    return score


def _segment_similarity(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    if a == b:
        return 1.0
    same = sum(1 for x, y in zip(a, b, strict=False) if x == y)
    return same / max(len(a), len(b))


def _grouped(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for name, value in pairs:
        groups.setdefault(name, []).append(value)
    return groups


def _pairs_similarity(a: Sequence[tuple[str, str]], b: Sequence[tuple[str, str]]) -> float:
    if a == b:
        return 1.0
    ga, gb = _grouped(a), _grouped(b)
    names = ga.keys() | gb.keys()
    total = 0.0
    for name in names:
        if name in ga and name in gb:
            total += 1.0 if ga[name] == gb[name] else 0.5
    return total / len(names)


def _form_pairs(view: BodyView) -> list[tuple[str, str]]:
    """Form fields as text: the key holds them as Latin-1 (one character per byte)."""
    raw = view.value if isinstance(view.value, tuple) else ()

    def text(part: str) -> str:
        return part.encode("latin-1").decode("utf-8", "replace")

    return [(text(name), text(value)) for name, value in raw]


def _body_similarity(rec: BodyView, live: BodyView) -> float:
    if rec.canonical == live.canonical:
        return 1.0
    if rec.kind == live.kind == "json":
        try:
            diffs: list[str] = []
            compared = _json_diff(rec.value, live.value, "body", diffs)
        except RecursionError:
            return 0.0
        return max(0.0, 1.0 - len(diffs) / max(compared, 1))
    if rec.kind == live.kind == "form":
        return _pairs_similarity(_form_pairs(rec), _form_pairs(live))
    return 0.0


def _differences(
    rec: _Facts, live: _Facts, rec_body: BodyView, live_body: BodyView
) -> tuple[str, ...]:
    out: list[str] = []
    for field in ("dep", "method", "scheme"):
        if getattr(rec, field) != getattr(live, field):
            out.append(f"{field}: recorded {getattr(rec, field)}, live {getattr(live, field)}")
    if rec.host != live.host:
        out.append(f"host: recorded {rec.host or '(upstream)'}, live {live.host or '(upstream)'}")
    if rec.path != live.path:
        out.append(f"path: recorded {_clip(rec.path)}, live {_clip(live.path)}")
    out.extend(_pairs_differences("query", rec.query, live.query))
    out.extend(_body_differences(rec_body, live_body))
    return tuple(out)


def _pairs_differences(
    label: str, rec: Sequence[tuple[str, str]], live: Sequence[tuple[str, str]]
) -> list[str]:
    if rec == live:
        return []
    grec, glive = _grouped(rec), _grouped(live)
    out = []
    for name in sorted(grec.keys() | glive.keys()):
        if name not in glive:
            out.append(f"{label} {_clip(name)}: only recorded")
        elif name not in grec:
            out.append(f"{label} {_clip(name)}: only live")
        elif grec[name] != glive[name]:
            out.append(
                f"{label} {_clip(name)}: recorded {_show_values(grec[name])}, "
                f"live {_show_values(glive[name])}"
            )
    return out


def _show_values(values: list[str]) -> str:
    return _clip(repr(values[0]) if len(values) == 1 else repr(values))


def _body_differences(rec: BodyView, live: BodyView) -> list[str]:
    if rec.canonical == live.canonical:
        return []
    lines: list[str] = []
    if rec.kind == live.kind == "json":
        try:
            _json_diff(rec.value, live.value, "body", lines)
        except RecursionError:
            lines = []
    elif rec.kind == live.kind == "form":
        lines = _pairs_differences("form", _form_pairs(rec), _form_pairs(live))
    if not lines:
        return [f"body: recorded {_body_summary(rec)}, live {_body_summary(live)}"]
    if len(lines) > MAX_BODY_LINES:
        more = len(lines) - (MAX_BODY_LINES - 1)
        lines = [*lines[: MAX_BODY_LINES - 1], f"body: {more} more differences"]
    return lines


def _body_summary(view: BodyView) -> str:
    if view.kind == "empty":
        return "empty"
    prefix = {"json": "JSON, ", "form": "form, "}.get(view.kind, "")
    return f"{prefix}{view.size} bytes (sha256 {view.sha256[:8]}…)"


def _json_diff(rec: object, live: object, path: str, out: list[str]) -> int:
    """Append one line per differing JSON path to ``out``; return how many leaves were compared."""
    if isinstance(rec, dict) and isinstance(live, dict):
        compared = 0
        for key in sorted(rec.keys() | live.keys()):
            child = _child(path, key)
            if key not in live:
                out.append(f"{child}: only recorded")
                compared += 1
            elif key not in rec:
                out.append(f"{child}: only live")
                compared += 1
            else:
                compared += _json_diff(rec[key], live[key], child, out)
        return max(compared, 1)
    if isinstance(rec, list) and isinstance(live, list):
        compared = 0
        for i, (a, b) in enumerate(zip(rec, live, strict=False)):
            compared += _json_diff(a, b, f"{path}[{i}]", out)
        if len(rec) != len(live):
            out.append(f"{path}: recorded {len(rec)} items, live {len(live)} items")
            compared += abs(len(rec) - len(live))
        return max(compared, 1)
    if type(rec) is not type(live) or rec != live:
        out.append(f"{path}: recorded {_show_json(rec)}, live {_show_json(live)}")
    return 1


def _child(path: str, key: str) -> str:
    if key.isidentifier():
        return f"{path}.{key}"
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _show_json(value: object) -> str:
    return _clip(json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False))


def _clip(text: str) -> str:
    return text if len(text) <= _SHOW_MAX else text[: _SHOW_MAX - 1] + "…"
