"""Chained values end to end: a login whose token is new on every run, then an authenticated
chain (a note created with a random id, read back by id, pages followed by random cursors, a
session cookie). Recorded once; replayed against a fresh app, whose tokens, ids and cursors all
differ, the set is green without --freeze-time, because each later request gets the value the
live response handed out."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from tests.helpers.procs import REPO_ROOT, free_port
from tests.helpers.wt import Recording, run_test_json, run_wiretape, set_path, write_config

pytestmark = pytest.mark.integration

APP = REPO_ROOT / "tests" / "apps" / "chainapp.py"

TRAFFIC = """\
import http.cookiejar, json, os, sys, urllib.request
base = os.environ["WIRETAPE_URL"]
jar = http.cookiejar.CookieJar()
opener = urllib.request.build_opener(
    urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(jar)
)
def call(method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data else {}
    if token:
        headers["Authorization"] = "Bearer " + token
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    with opener.open(req, timeout=30) as resp:
        return json.loads(resp.read())
token = call("POST", "/login", {"user": "alice"})["token"]
call("GET", "/me", token=token)
call("GET", "/session")
ids = [call("POST", "/notes", {"text": f"note {i}"}, token=token)["id"] for i in range(5)]
call("GET", "/notes/" + ids[2])
page = call("GET", "/notes")
while "next_cursor" in page:
    page = call("GET", "/notes?cursor=" + page["next_cursor"])
"""


def test_tokens_ids_cursors_and_cookies_follow_the_live_answers(tmp_path: Path) -> None:
    port = free_port()
    write_config(tmp_path, command=f"{sys.executable} {APP} {port}", port=port, health="/health")
    script = tmp_path / "traffic.py"
    script.write_text(TRAFFIC)
    with Recording(tmp_path, args=["--run", f"{sys.executable} {script}"]) as rec:
        assert rec.wait(60) == 0, rec.output()
        assert "chained value" in rec.output()
    tests = sorted((set_path(tmp_path) / "tests").glob("*.yaml"))
    assert len(tests) == 12
    chained = {p.name: yaml.safe_load(p.read_text()).get("chains", []) for p in tests}
    me = next(v for k, v in chained.items() if k.endswith("get-me.yaml"))
    assert me[0]["in"] == ["header.Authorization"] and me[0]["path"] == "body.token"
    session = next(v for k, v in chained.items() if k.endswith("get-session.yaml"))
    assert session and session[0]["path"] == "cookie.session", session

    done, report = run_test_json(tmp_path)
    failing = [r for r in report["results"] if r["status"] != "passed"]
    assert failing == [] and done.returncode == 0, json.dumps(failing, indent=1)[:3000]

    # The same set without its chains fails: the recorded token, id and cursors are stale.
    bare = set_path(tmp_path).parent / "bare"
    shutil.copytree(set_path(tmp_path), bare)
    for path in (bare / "tests").glob("*.yaml"):
        doc = yaml.safe_load(path.read_text())
        doc.pop("chains", None)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    done, report = run_test_json(tmp_path, set_name="bare")
    assert done.returncode == 1
    statuses = json.dumps(report)
    assert "401" in statuses and "404" in statuses

    # `wiretape templatize` finds the same chains again on the stripped copy.
    out = run_wiretape(tmp_path, "templatize", "bare")
    assert out.returncode == 0, out.stderr
    assert "Authorization <- body.token" in out.stdout
    done, _ = run_test_json(tmp_path, set_name="bare")
    assert done.returncode == 0
