"""The example services talking to each other directly, with no wiretape in between."""

from __future__ import annotations

import datetime as dt
import re
import ssl
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from tests.helpers.procs import (
    EXAMPLES_DIR,
    ExampleServices,
    Proc,
    ProcessFailed,
    clean_env,
    start_examples,
)

pytestmark = pytest.mark.integration

ORDER_ID = re.compile(r"^ord_[0-9]{6}$")
CHARGE_ID = re.compile(r"^ch_[0-9a-f]{24}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def examples(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExampleServices]:
    with start_examples(tmp_path_factory.mktemp("examples")) as services:
        yield services


@pytest.fixture
def shop(examples: ExampleServices) -> Iterator[Proc]:
    with examples.start_shop() as proc:
        yield proc


def shop_client(proc: Proc) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{proc.port}", trust_env=False, timeout=10)


def payments_client(examples: ExampleServices, key: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key or examples.payments_key}"}
    return httpx.Client(base_url=examples.payments_url, headers=headers, trust_env=False)


def payments_log(examples: ExampleServices) -> str:
    return next(proc for proc in examples.procs if proc.name == "payments").output()


def parse_iso(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, value
    return parsed


def test_client_session_passes_and_leaves_the_expected_orders(shop: Proc) -> None:
    result = subprocess.run(
        [sys.executable, "client.py"],
        cwd=EXAMPLES_DIR,
        env=clean_env({"WIRETAPE_URL": f"http://127.0.0.1:{shop.port}"}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{shop.describe()}"
    request_lines = [line for line in result.stdout.splitlines() if line.startswith("ok ")]
    assert 8 <= len(request_lines) <= 12, result.stdout

    with shop_client(shop) as client:
        orders = client.get("/api/orders").json()
    assert [order["status"] for order in orders] == ["payment_failed", "pending_payment", "paid"]
    _declined, pending, paid = orders
    assert paid["total_cents"] == 2 * 2_850
    assert paid["items"] == [
        {
            "product_id": "prd_beans",
            "name": "Single-origin coffee beans, 1 kg",
            "quantity": 2,
            "unit_price_cents": 2_850,
        }
    ]
    assert pending["total_cents"] == 2 * 64_900
    for order in orders:
        assert ORDER_ID.match(order["id"]), order
        assert CHARGE_ID.match(order["charge_id"]), order
        assert order["currency"] == "EUR"
        parse_iso(order["created_at"])
    assert len({order["id"] for order in orders}) == 3


def test_product_price_is_converted_with_the_https_rates_service(shop: Proc) -> None:
    with shop_client(shop) as client:
        eur = client.get("/api/products/prd_grinder")
        usd = client.get("/api/products/prd_grinder", params={"currency": "usd"})
        bad = client.get("/api/products/prd_grinder", params={"currency": "XYZ"})
        missing = client.get("/api/products/prd_nothing")
    assert eur.status_code == 200
    assert eur.json()["price_cents"] == 14_900
    assert usd.status_code == 200, usd.text
    body = usd.json()
    assert body["currency"] == "USD"
    assert body["rate"] == 1.0842
    assert body["price_cents"] == round(14_900 * 1.0842)
    quoted = parse_iso(body["quoted_at"])
    assert abs((dt.datetime.now(dt.UTC) - quoted).total_seconds()) < 60
    assert bad.status_code == 400
    assert missing.status_code == 404


def test_pending_order_is_refreshed_from_payments(shop: Proc, examples: ExampleServices) -> None:
    order = {"product_id": "prd_espresso", "quantity": 2, "source": "tok_visa"}
    with shop_client(shop) as client:
        created = client.post("/api/orders", json=order)
        assert created.status_code == 201, created.text
        fetched = client.get(f"/api/orders/{created.json()['id']}")
    assert fetched.status_code == 200
    assert fetched.json()["status"] == "pending_payment"
    assert "/v1/charges/" + created.json()["charge_id"] in payments_log(examples)


def test_bad_order_input_is_rejected(shop: Proc) -> None:
    with shop_client(shop) as client:
        not_json = client.post("/api/orders", content=b"{", headers={"content-type": "text/json"})
        no_quantity = client.post("/api/orders", json={"product_id": "prd_mug", "source": "x"})
        unknown = client.post(
            "/api/orders", json={"product_id": "prd_nope", "quantity": 1, "source": "tok_visa"}
        )
        listed = client.get("/api/orders").json()
    assert not_json.status_code == 422
    assert no_quantity.status_code == 422
    assert "quantity" in no_quantity.json()["error"]["message"]
    assert unknown.status_code == 404
    assert listed == []


@pytest.mark.parametrize(
    ("variant", "status", "total_field"),
    [(None, 201, "total_cents"), ("rename", 201, "total"), ("status", 200, "total_cents")],
)
def test_shop_variant_changes_only_its_own_aspect(
    examples: ExampleServices, variant: str | None, status: int, total_field: str
) -> None:
    order = {"product_id": "prd_mug", "quantity": 3, "source": "tok_visa"}
    with examples.start_shop(variant=variant) as proc, shop_client(proc) as client:
        created = client.post("/api/orders", json=order)
        fetched = client.get(f"/api/orders/{created.json()['id']}").json()
    assert created.status_code == status
    other_field = {"total", "total_cents"} - {total_field}
    for body in (created.json(), fetched):
        assert body[total_field] == 3 * 1_200
        assert not other_field & body.keys()
        assert body["status"] == "paid"


def test_unknown_variant_stops_the_shop_with_a_clear_message(examples: ExampleServices) -> None:
    with pytest.raises(ProcessFailed) as failed:
        examples.start_shop(variant="nonsense")
    message = str(failed.value)
    assert "exited before listening" in message
    assert "SHOP_VARIANT='nonsense' is not known" in message


def test_payments_auth_idempotency_and_request_ids(examples: ExampleServices) -> None:
    charge = {"amount": 4_200, "currency": "EUR", "source": "tok_visa"}
    with httpx.Client(base_url=examples.payments_url, trust_env=False) as anonymous:
        unauthorized = anonymous.post("/v1/charges", json=charge)
    with payments_client(examples) as client:
        first = client.post("/v1/charges", json=charge, headers={"Idempotency-Key": "k-1"})
        again = client.post("/v1/charges", json=charge, headers={"Idempotency-Key": "k-1"})
        other = client.post("/v1/charges", json=charge, headers={"Idempotency-Key": "k-2"})
        declined = client.post("/v1/charges", json={**charge, "source": "tok_declined"})
        big = client.post("/v1/charges", json={**charge, "amount": 100_000})
        fetched = client.get(f"/v1/charges/{first.json()['id']}")
        missing = client.get("/v1/charges/ch_000000000000000000000000")
        invalid = client.post("/v1/charges", json={**charge, "amount": "12"})
    assert unauthorized.status_code == 401
    assert UUID.match(unauthorized.headers["x-request-id"])
    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert again.json() == first.json()
    assert other.json()["id"] != first.json()["id"]
    assert first.json()["status"] == "succeeded"
    assert CHARGE_ID.match(first.json()["id"])
    assert (declined.status_code, declined.json()["status"]) == (402, "declined")
    assert (big.status_code, big.json()["status"]) == (201, "pending")
    assert fetched.json() == first.json()
    assert (missing.status_code, invalid.status_code) == (404, 400)
    assert first.headers["date"]
    assert first.headers["x-request-id"] != again.headers["x-request-id"]


def test_rates_certificates_and_answers(examples: ExampleServices) -> None:
    assert (examples.certs_dir / "rates-key.pem").stat().st_mode & 0o777 == 0o600
    context = ssl.create_default_context(cafile=str(examples.rates_ca))
    for host in ("localhost", "127.0.0.1"):
        with httpx.Client(base_url=f"https://{host}:{examples.rates_port}", verify=context) as c:
            latest = c.get("/v1/latest", params={"base": "EUR"})
            assert latest.status_code == 200
    body = latest.json()
    assert body["base"] == "EUR"
    assert set(body["rates"]) == {"USD", "GBP", "JPY", "CHF"}
    assert body["date"] == dt.datetime.now(dt.UTC).date().isoformat()
    parse_iso(body["fetched_at"].replace("Z", "+00:00"))
    with httpx.Client(base_url=examples.rates_url, verify=context) as client:
        usd = client.get("/v1/latest", params={"base": "USD"}).json()
        assert client.get("/v1/latest", params={"base": "USD"}).json()["rates"] == usd["rates"]
        assert client.get("/v1/latest", params={"base": "ZZZ"}).status_code == 400
    assert usd["rates"]["EUR"] == pytest.approx(1 / body["rates"]["USD"], rel=1e-5)
    with pytest.raises(httpx.ConnectError), httpx.Client(verify=True, trust_env=False) as client:
        client.get(f"{examples.rates_url}/v1/latest")
