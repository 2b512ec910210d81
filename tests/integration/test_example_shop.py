"""The example shop with all its real dependencies: payments (HTTP), rates (HTTPS through the
forward proxy) and PostgreSQL (orders). Recorded with examples/client.py as the traffic source,
then replayed with every dependency stopped, as the README's demo does."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
from tests.helpers.procs import EXAMPLES_DIR, free_port, start_examples
from tests.helpers.servers import postgres_server
from tests.helpers.wt import Recording, load, run_test_json, write_config

from wiretape.model import WireRequest

pytestmark = pytest.mark.integration


def test_shop_with_postgres_replays_with_every_dependency_stopped(tmp_path: Path) -> None:
    work = tmp_path / "work"
    with start_examples(tmp_path / "upstreams") as services, postgres_server() as pg:
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
                "SHOP_JWT_SECRET": "test-jwt-secret",
            },
            deps={
                "payments": {"protocol": "http", "upstream": services.payments_url},
                "db": {"protocol": "postgres", "upstream": pg.address},
            },
            extra={
                "app": {"cwd": str(EXAMPLES_DIR)},
                "tls": {"extra_ca": str(services.rates_ca)},
                "noise": ["body.created_at", "body[*].created_at", "body.quoted_at"],
            },
        )
        client = f"{shlex.quote(sys.executable)} {EXAMPLES_DIR / 'client.py'} --sign-in"
        rec = Recording(work, args=["--run", client])
        with rec:
            assert rec.wait(120) == 0, rec.output()
        orders = pg.psql("SELECT id, status FROM orders ORDER BY number")
    # payments, rates and PostgreSQL are all stopped now.
    assert orders.split() == [
        "ord_000001|paid",
        "ord_000002|pending_payment",
        "ord_000003|payment_failed",
    ]
    test_set = load(work)
    statements = [
        m.request.summary
        for mocks in test_set.mocks.values()
        for m in mocks
        if isinstance(m.request, WireRequest)
    ]
    assert any(s.startswith("INSERT INTO orders") for s in statements)
    assert any("nextval('order_numbers')" in s for s in statements)
    done, report = run_test_json(work)
    failing = [r for r in report["results"] if r["status"] != "passed"]
    assert failing == [] and done.returncode == 0, failing
    assert len(report["results"]) == 12
    login = next(r for r in report["results"] if r["test_id"].endswith("post-api-login"))
    assert login["status"] == "passed"  # a new JWT: same header and stable claims
    # A code change is still caught with the database replayed.
    done, report = run_test_json(work, env={"SHOP_VARIANT": "rename"})
    assert done.returncode == 1
    assert any(r["status"] == "failed" for r in report["results"])
