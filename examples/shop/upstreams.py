"""Typed wrappers over the shared httpx clients for the payments and rates services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from shop.orders import CHARGE_TO_ORDER_STATUS


class UpstreamError(Exception):
    """A dependency could not be reached or answered in a way the shop cannot use."""

    def __init__(self, service: str, message: str) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service


@dataclass(frozen=True)
class ChargeResult:
    id: str
    status: str


def _json(service: str, response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise UpstreamError(
            service, f"{response.request.method} {response.request.url.path} returned non-JSON"
        ) from exc


async def _send(service: str, client: httpx.AsyncClient, request: httpx.Request) -> httpx.Response:
    try:
        return await client.send(request)
    except httpx.HTTPError as exc:
        raise UpstreamError(service, f"{request.method} {request.url} failed: {exc!r}") from exc


class PaymentsClient:
    service = "payments"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def create_charge(
        self, *, amount: int, currency: str, source: str, idempotency_key: str
    ) -> ChargeResult:
        request = self._client.build_request(
            "POST",
            "/v1/charges",
            json={"amount": amount, "currency": currency, "source": source},
            headers={"Idempotency-Key": idempotency_key},
        )
        response = await _send(self.service, self._client, request)
        if response.status_code not in (200, 201, 402):
            raise UpstreamError(
                self.service, f"POST /v1/charges answered {response.status_code}: {response.text}"
            )
        return self._charge(_json(self.service, response))

    async def get_charge(self, charge_id: str) -> ChargeResult:
        request = self._client.build_request("GET", f"/v1/charges/{charge_id}")
        response = await _send(self.service, self._client, request)
        if response.status_code != 200:
            raise UpstreamError(
                self.service,
                f"GET /v1/charges/{charge_id} answered {response.status_code}: {response.text}",
            )
        return self._charge(_json(self.service, response))

    def _charge(self, body: Any) -> ChargeResult:
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("id"), str)
            or body.get("status") not in CHARGE_TO_ORDER_STATUS
        ):
            raise UpstreamError(self.service, f"unexpected charge object: {body!r}")
        return ChargeResult(id=body["id"], status=body["status"])


class RatesClient:
    service = "rates"

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def latest(self, base: str) -> dict[str, float]:
        request = self._client.build_request("GET", "/v1/latest", params={"base": base})
        response = await _send(self.service, self._client, request)
        if response.status_code != 200:
            raise UpstreamError(
                self.service, f"GET /v1/latest answered {response.status_code}: {response.text}"
            )
        body = _json(self.service, response)
        rates = body.get("rates") if isinstance(body, dict) else None
        if not isinstance(rates, dict):
            raise UpstreamError(self.service, f"no 'rates' object in {body!r}")
        return {str(k): float(v) for k, v in rates.items() if isinstance(v, int | float)}
