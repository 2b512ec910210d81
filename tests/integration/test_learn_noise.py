"""``--learn-noise``: fields the app makes up on every run are found by replaying twice, and
written as the tests' noise; a real change is never learned as noise."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from tests.helpers.procs import REPO_ROOT, free_port
from tests.helpers.wt import Recording, run_test_json, run_wiretape, set_path, write_config

pytestmark = pytest.mark.integration

APP = REPO_ROOT / "tests" / "apps" / "noisyapp.py"
TRAFFIC = (
    "import os, urllib.request as u; o = u.build_opener(u.ProxyHandler({}))\n"
    "for p in ('/thing', '/fixed'): o.open(os.environ['WIRETAPE_URL'] + p, timeout=30).read()\n"
)


def record(dir: Path, *args: str) -> Recording:
    port = free_port()
    write_config(dir, command=f"{sys.executable} {APP} {port}", port=port)
    script = dir / "traffic.py"
    script.write_text(TRAFFIC)
    rec = Recording(dir, args=["--run", f"{sys.executable} {script}", *args])
    with rec:
        assert rec.wait(120) == 0, rec.output()
    return rec


def noise_of(dir: Path) -> dict[str, list[str]]:
    out = {}
    for path in sorted((set_path(dir) / "tests").glob("*.yaml")):
        out[path.stem] = yaml.safe_load(path.read_text()).get("noise", [])
    return out


def test_learn_noise_finds_app_generated_fields(tmp_path: Path) -> None:
    record(tmp_path)
    done, report = run_test_json(tmp_path)
    assert done.returncode == 1  # the nonce and the numbers differ

    dry = run_wiretape(tmp_path, "test", "--learn-noise", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "0001-get-thing: body.nonce" in dry.stdout
    assert "0001-get-thing: body.items[*].n" in dry.stdout
    assert "fixed" not in dry.stdout
    assert noise_of(tmp_path) == {"0001-get-thing": [], "0002-get-fixed": []}

    done = run_wiretape(tmp_path, "test", "--learn-noise")
    assert done.returncode == 0, done.stderr
    assert noise_of(tmp_path)["0001-get-thing"] == ["body.items[*].n", "body.nonce"]
    done, report = run_test_json(tmp_path)
    assert done.returncode == 0, report

    # A real change differs from the recording the same way in both replays: never noise.
    changed = {"NOISY_VARIANT": "changed"}
    done = run_wiretape(tmp_path, "test", "--learn-noise", "--dry-run", env=changed)
    assert "stable" not in done.stdout
    done, report = run_test_json(tmp_path, env=changed)
    assert done.returncode == 1
    paths = [d["path"] for r in report["results"] for d in r["differences"]]
    assert "body.stable" in paths


def test_record_learn_noise_makes_a_fresh_set_stable(tmp_path: Path) -> None:
    rec = record(tmp_path, "--learn-noise")
    assert "noise path" in rec.output()
    assert noise_of(tmp_path)["0001-get-thing"] == ["body.items[*].n", "body.nonce"]
    for _ in range(3):
        done, report = run_test_json(tmp_path)
        assert done.returncode == 0, report


def test_strict_values_per_set(tmp_path: Path) -> None:
    record(tmp_path, "--learn-noise")
    done, report = run_test_json(tmp_path)
    assert done.returncode == 0, report  # body.at is a timestamp: compared by kind
    info = set_path(tmp_path) / "set.yaml"
    doc = yaml.safe_load(info.read_text())
    doc["strict_values"] = True
    info.write_text(yaml.safe_dump(doc, sort_keys=False))
    done, report = run_test_json(tmp_path)
    assert done.returncode == 1
    paths = [d["path"] for r in report["results"] for d in r["differences"]]
    assert "body.at" in paths


def test_request_noise_rules_and_typed_values_in_outgoing_calls(tmp_path: Path) -> None:
    from tests.helpers.procs import Proc, wait_for_port

    up_port = free_port()
    upstream = Proc(
        [sys.executable, str(REPO_ROOT / "tests" / "apps" / "upstream.py"), "--port", str(up_port)],
        name="upstream",
        port=up_port,
    )
    with upstream:
        wait_for_port(up_port, proc=upstream)
        port = free_port()
        write_config(
            tmp_path,
            command=f"{sys.executable} {APP} {port}",
            port=port,
            deps={"up": {"protocol": "http", "upstream": f"http://127.0.0.1:{up_port}"}},
            env={"UPSTREAM_URL": "http://{deps.up}"},
        )
        script = tmp_path / "traffic.py"
        script.write_text(TRAFFIC.replace("('/thing', '/fixed')", "('/call',)"))
        with Recording(tmp_path, args=["--run", f"{sys.executable} {script}"]) as rec:
            assert rec.wait(60) == 0, rec.output()
    # The upstream is stopped: only the recording can answer.
    done, report = run_test_json(tmp_path)
    assert done.returncode == 1
    miss = json.dumps(report["results"][0]["misses"])
    assert "nonce" in miss
    config = tmp_path / "wiretape.yaml"
    doc = yaml.safe_load(config.read_text())
    doc["deps"]["up"]["request_noise"] = ["body.nonce", "query.ts"]
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    done, report = run_test_json(tmp_path)
    assert done.returncode == 0, report  # request_id, a UUID, matched by kind
