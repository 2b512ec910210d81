"""A fake foreign-exchange rates API served over HTTPS with its own test CA.

Run: python examples/rates/server.py --port 9443 --certs .certs

Clients must trust DIR/rates-ca.pem (for example with SSL_CERT_FILE). Rates are fixed numbers, so
the same base always gives the same rates; only `date` and `fetched_at` change.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import uvicorn
from certs import ensure_certs
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

EUR_RATES = {"EUR": 1.0, "USD": 1.0842, "GBP": 0.8531, "JPY": 162.37, "CHF": 0.9518}


def rates_for(base: str) -> dict[str, float]:
    per_base = EUR_RATES[base]
    return {
        symbol: round(per_eur / per_base, 6)
        for symbol, per_eur in EUR_RATES.items()
        if symbol != base
    }


async def latest(request: Request) -> JSONResponse:
    base = request.query_params.get("base", "EUR").upper()
    if base not in EUR_RATES:
        return JSONResponse(
            {
                "error": {
                    "code": "unsupported_base",
                    "message": f"base {base!r} is not supported; use one of {sorted(EUR_RATES)}",
                }
            },
            status_code=400,
        )
    now = dt.datetime.now(dt.UTC)
    return JSONResponse(
        {
            "base": base,
            "date": now.date().isoformat(),
            "rates": rates_for(base),
            "fetched_at": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
    )


app = Starlette(routes=[Route("/v1/latest", latest, methods=["GET"])])


def main() -> None:
    parser = argparse.ArgumentParser(description="Fake FX rates API (HTTPS) for the examples.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9443)
    parser.add_argument(
        "--certs", type=Path, default=Path(".certs"), help="directory for the CA and server cert"
    )
    args = parser.parse_args()
    paths = ensure_certs(args.certs)
    print(f"rates: clients must trust {paths.ca.resolve()}", flush=True)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        ssl_certfile=str(paths.cert),
        ssl_keyfile=str(paths.key),
        log_level="info",
    )


if __name__ == "__main__":
    main()
