"""Stable replays: the example shop with every kind of dependency and volatile value, recorded
twice from fresh databases, replays green 20 times in a row for each set, and neither set holds
a credential (`wiretape secrets scan`).

The shop signs users in with JWTs (new on every login), stores orders with timestamps and
receipt UUIDs in PostgreSQL, caches exchange rates in Redis, charges payments over HTTP and reads
rates over HTTPS through the forward proxy. Each recording starts from a new PostgreSQL and a new
Redis; both are stopped before the replays. Everything a replay meets that differs from the
recording (tokens, times, UUIDs) must be handled by typed comparison, chained values and loose
matching, with no noise rules beyond the example's own.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pytest
from tests.helpers.procs import EXAMPLES_DIR, free_port, start_examples
from tests.helpers.redis_server import redis_server
from tests.helpers.servers import postgres_server
from tests.helpers.wt import Recording, run_test_json, run_wiretape, write_config

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPLAYS = 20


def record_fresh(work: Path, upstreams: Path, set_name: str) -> None:
    with (
        start_examples(upstreams) as services,
        postgres_server() as pg,
        redis_server() as cache,
    ):
        port = free_port()
        write_config(
            work,
            command=f"{shlex.quote(sys.executable)} shop/app.py --port {port}",
            port=port,
            health="/healthz",
            env={
                "PAYMENTS_URL": "http://{deps.payments}",
                "PAYMENTS_KEY": services.payments_key,
                "RATES_URL": services.rates_url,
                "DATABASE_URL": f"postgresql://{pg.user}:{pg.password}@{{deps.db}}/{pg.database}",
                "REDIS_URL": "redis://{deps.cache}/0",
                "SHOP_JWT_SECRET": "stability-jwt-key",
            },
            deps={
                "payments": {"protocol": "http", "upstream": services.payments_url},
                "db": {"protocol": "postgres", "upstream": pg.address},
                "cache": {"protocol": "redis", "upstream": cache.address},
            },
            extra={
                "app": {"cwd": str(EXAMPLES_DIR)},
                "tls": {"extra_ca": str(services.rates_ca)},
                "noise": ["body.created_at", "body[*].created_at", "body.quoted_at"],
            },
        )
        client = f"{shlex.quote(sys.executable)} {EXAMPLES_DIR / 'client.py'} --sign-in"
        rec = Recording(work, set_name=set_name, args=["--run", client])
        with rec:
            assert rec.wait(120) == 0, rec.output()


def test_two_fresh_recordings_each_replay_green_twenty_times(tmp_path: Path) -> None:
    names = ("first", "second")
    for name in names:
        # Each recording has its own project directory: the upstreams get new ports each time.
        record_fresh(tmp_path / name, tmp_path / f"upstreams-{name}", name)
    # Every dependency is stopped from here on.
    for name in names:
        work = tmp_path / name
        scan = run_wiretape(work, "secrets", "scan", name)
        assert scan.returncode == 0, scan.stdout + scan.stderr
        for attempt in range(REPLAYS):
            done, report = run_test_json(work, set_name=name)
            failing = [r for r in report["results"] if r["status"] != "passed"]
            assert done.returncode == 0 and not failing, (
                f"set {name}, replay {attempt + 1}: " + json.dumps(failing, indent=1)[:3000]
            )
            assert len(report["results"]) == 12
