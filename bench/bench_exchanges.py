"""Validation calls per second and latency through each official client, against the double.

Not a test: prints a table. Each row is a bounded loop (N calls or a time cap, whichever comes
first) on loopback against the exchange double:

- raw GET (http.client, one keep-alive connection): the floor for that endpoint on this machine,
- for Kalshi also the raw GET plus one RSA-PSS signature (what the venue's auth costs at least;
  the official client signs twice per request, building the headers in two places),
- the adapter over the official client (Kalshi orderbook signs RSA-PSS on every call; Polymarket
  book is unauthenticated), which is what a validation pays.

Run: .venv/bin/python bench/bench_exchanges.py [--calls 2000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from exchanges.double import ExchangeDouble, Scenario
from exchanges.kalshi import KalshiAdapter, KalshiCredentials
from exchanges.polymarket import PolymarketAdapter, PolymarketCredentials
from exchanges.testing import kalshi_key_pair, polymarket_private_key

KEY_ID = "bench-key"
RAW_KALSHI = "raw GET kalshi orderbook (unsigned)"
RAW_KALSHI_SIGNED = "raw GET kalshi + 1 RSA-PSS signature"
KALSHI_CLIENT = "KalshiAdapter.orderbook (signed)"
RAW_POLYMARKET = "raw GET polymarket /book"
POLYMARKET_CLIENT = "PolymarketAdapter.orderbook"


def measure(call: Callable[[], bool], *, max_calls: int, max_seconds: float) -> dict[str, float]:
    latencies_ms: list[float] = []
    failures = 0
    started = time.perf_counter()
    deadline = started + max_seconds
    while len(latencies_ms) < max_calls and time.perf_counter() < deadline:
        t0 = time.perf_counter()
        ok = call()
        latencies_ms.append((time.perf_counter() - t0) * 1000.0)
        failures += not ok
    elapsed_s = time.perf_counter() - started
    ordered = sorted(latencies_ms)
    return {
        "calls": len(ordered),
        "failures": failures,
        "per_s": len(ordered) / elapsed_s,
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
    }


def raw_get(base_url: str, path: str) -> Callable[[], bool]:
    split = urlsplit(base_url)
    connection = http.client.HTTPConnection(split.hostname, split.port, timeout=5)

    def call() -> bool:
        connection.request("GET", path, headers={"Accept": "application/json"})
        response = connection.getresponse()
        response.read()
        return response.status == 200

    return call


def raw_signed_get(base_url: str, path: str, private_pem: str) -> Callable[[], bool]:
    """The floor plus one RSA-PSS signature per call, as the venue requires (exchange-apis 1.2)."""
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    unsigned = raw_get(base_url, path)
    signed_path = urlsplit(path).path

    def call() -> bool:
        timestamp = str(time.time_ns() // 1_000_000)
        message = (timestamp + "GET" + signed_path).encode()
        key.sign(
            message, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH), hashes.SHA256()
        )
        return unsigned()

    return call


def measure_loops(calls: int, seconds: float) -> list[tuple[str, dict[str, float]]]:
    """Each loop against the double: the raw floors and the adapters over the official clients."""
    scenario = Scenario.demo()
    ticker = next(iter(scenario.kalshi_markets))
    token = next(iter(scenario.polymarket_books))
    private_pem, public_pem = kalshi_key_pair()
    rows: list[tuple[str, dict[str, float]]] = []
    with ExchangeDouble(scenario) as double:
        double.state.register_kalshi_key(KEY_ID, public_pem)
        kalshi = KalshiAdapter(
            KalshiCredentials(api_key_id=KEY_ID, private_key_pem=private_pem, host=double.kalshi_host)
        )
        poly = PolymarketAdapter(
            PolymarketCredentials(private_key=polymarket_private_key(), host=double.polymarket_host)
        )
        loops = [
            (RAW_KALSHI, raw_get(double.base_url, f"/trade-api/v2/markets/{ticker}/orderbook")),
            (
                RAW_KALSHI_SIGNED,
                raw_signed_get(double.base_url, f"/trade-api/v2/markets/{ticker}/orderbook", private_pem),
            ),
            (KALSHI_CLIENT, lambda: kalshi.orderbook(ticker).ok),
            (RAW_POLYMARKET, raw_get(double.base_url, f"/book?token_id={token}")),
            (POLYMARKET_CLIENT, lambda: poly.orderbook(token, "yes").ok),
        ]
        for name, call in loops:
            call()  # warm up: connection, key load, imports
            rows.append((name, measure(call, max_calls=calls, max_seconds=seconds)))
    return rows


# Each measured loop and the floor it is compared with.
COMPARISONS = (
    (RAW_KALSHI_SIGNED, RAW_KALSHI),
    (KALSHI_CLIENT, RAW_KALSHI),
    (POLYMARKET_CLIENT, RAW_POLYMARKET),
)


def run(calls: int = 2000, seconds: float = 5.0) -> list[dict]:
    """Figure rows for `python -m bench` (bench/common.py)."""
    from bench.common import figure

    by_name = dict(measure_loops(calls, seconds))
    rows = []
    for name, floor in COMPARISONS:
        measured, reference = by_name[name], by_name[floor]
        note = f"{measured['calls']} calls, {measured['failures']} failed"
        rows.append(
            figure(
                "exchanges",
                f"{name}, calls/s",
                measured["per_s"],
                "/s",
                f"{floor}, calls/s",
                reference["per_s"],
                note,
            )
        )
        rows.append(
            figure(
                "exchanges", f"{name}, p50", measured["p50_ms"], "ms", f"{floor}, p50", reference["p50_ms"]
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()

    rows = measure_loops(args.calls, args.seconds)
    print(
        f"\nexchange validation calls against the double on loopback ({args.calls} calls or {args.seconds:g} s each)\n"
    )
    print(f"{'loop':<40} {'calls':>6} {'fail':>5} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, r in rows:
        print(
            f"{name:<40} {r['calls']:>6} {r['failures']:>5} {r['per_s']:>9.0f} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f}"
        )
    by_name = dict(rows)
    print()
    for venue, raw_name, client_name in (
        ("kalshi", RAW_KALSHI, KALSHI_CLIENT),
        ("kalshi", RAW_KALSHI_SIGNED, KALSHI_CLIENT),
        ("polymarket", RAW_POLYMARKET, POLYMARKET_CLIENT),
    ):
        raw, client = by_name[raw_name], by_name[client_name]
        print(
            f"{venue:<11} official client / {raw_name}: p50 x{client['p50_ms'] / raw['p50_ms']:.1f}, "
            f"throughput x{raw['per_s'] / client['per_s']:.1f} slower"
        )


if __name__ == "__main__":
    main()
