"""What one live polling round costs at 10 / 100 / 1,000 pairs: one book per call vs batch calls.

Not a test: prints a table. The live poller (ingest.sources.LiveSource, the venues' official
clients inside) polls the exchange double on loopback, one round per (pairs, mode), with the
venues' read limits applied by the project's own token buckets (exchanges.ratelimit: Kalshi 20
reads/s, the basic tier; Polymarket /book 1,500 and /books 500 per 10 s).

The limiter's waits are not slept: its clock is the wall clock plus every wait it asked for, so a
round that the limits stretch to 50 s is measured in the few seconds its calls take. Per row:

- calls: Kalshi + Polymarket calls in the round,
- work: the round's measured wall time without the waits (the calls, parsing, the updates),
- round: work plus the limiter's waits, from empty buckets (the round time when rounds follow
  each other back to back); the measured figure,
- floor: calls / limit of the venue that limits most: from empty buckets no round of that many
  calls can be quicker at these limits, next to which `round` is read. The poller asks Kalshi,
  then Polymarket, so a round above its floor is mostly the second venue's calls beyond its
  burst, waiting after the first venue's.

Each (pairs, mode) first runs one unmeasured round (connections, the clients' first calls).
Bounded: about 10 to 20 s on a 2-CPU machine.

Run: .venv/bin/python bench/bench_rounds.py [--pairs 10 100 1000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import figure
from exchanges.books import KALSHI, POLYMARKET
from exchanges.double import ExchangeDouble
from exchanges.fees import kalshi_taker_schedule, polymarket_taker_schedule
from exchanges.ratelimit import (
    DEFAULT_LIMITS,
    KALSHI_READ,
    POLYMARKET_BOOK,
    POLYMARKET_BOOKS,
    LocalRateLimiter,
)
from exchanges.testing import paired_markets_scenario
from ingest.detector import PairSpec
from ingest.sources import LiveHosts, LiveSource

PAIR_COUNTS = (10, 100, 1000)
MODES = (("one book per call", False), ("batch calls", True))


class PacedClock:
    """The wall clock plus every wait asked of `sleep`, which returns at once."""

    def __init__(self) -> None:
        self.waited_s = 0.0

    def __call__(self) -> float:
        return time.perf_counter() + self.waited_s

    def sleep(self, seconds: float) -> None:
        self.waited_s += seconds


def measure_round(double: ExchangeDouble, pairs: list[PairSpec], *, batch: bool) -> dict[str, float]:
    clock = PacedClock()
    limiter = LocalRateLimiter(DEFAULT_LIMITS, clock=clock, sleep=clock.sleep)
    source = LiveSource(
        pairs,
        hosts=LiveHosts.of_double(double.base_url),
        rate_limiter=limiter,
        clock=clock,
        sleep=clock.sleep,
        poll_interval_s=0,
        batch_books=batch,
    )
    source.poll_once()  # unmeasured: connections and the clients' first calls
    for bucket in (KALSHI_READ, POLYMARKET_BOOK, POLYMARKET_BOOKS):
        limiter.acquire(bucket, DEFAULT_LIMITS[bucket].burst)  # empty buckets, as back to back
    double.reset_call_counts()
    waited_before, started = clock.waited_s, clock()
    updates = source.poll_once()
    round_s = clock() - started
    waits_s = clock.waited_s - waited_before
    counts = double.call_counts
    kalshi_calls = sum(n for (venue, _), n in counts.items() if venue == KALSHI)
    poly_calls = sum(n for (venue, _), n in counts.items() if venue == POLYMARKET)
    poly_rate = DEFAULT_LIMITS[POLYMARKET_BOOKS if batch else POLYMARKET_BOOK].rate_per_s
    if len(updates) != 3 * len(pairs):
        raise RuntimeError(f"{len(updates)} updates for {len(pairs)} pairs: the round lost books")
    return {
        "kalshi_calls": kalshi_calls,
        "poly_calls": poly_calls,
        "work_s": round_s - waits_s,
        "round_s": round_s,
        "floor_s": max(kalshi_calls / DEFAULT_LIMITS[KALSHI_READ].rate_per_s, poly_calls / poly_rate),
    }


def measure(pair_counts: tuple[int, ...] = PAIR_COUNTS) -> list[tuple[int, str, dict[str, float]]]:
    scenario, instruments = paired_markets_scenario(max(pair_counts))
    pairs = [
        PairSpec(ticker, ticker, yes, no, kalshi_taker_schedule(ticker), polymarket_taker_schedule())
        for ticker, yes, no in instruments
    ]
    rows = []
    with ExchangeDouble(scenario) as double:
        for count in pair_counts:
            for mode, batch in MODES:
                rows.append((count, mode, measure_round(double, pairs[:count], batch=batch)))
    return rows


def run(pair_counts: tuple[int, ...] = PAIR_COUNTS) -> list[dict]:
    """Figure rows for `python -m bench` (bench/common.py): each round next to its floor."""
    out = []
    for count, mode, r in measure(pair_counts):
        calls = f"{r['kalshi_calls']} + {r['poly_calls']} calls, work {r['work_s'] * 1000:.0f} ms"
        out.append(
            figure(
                "rounds",
                f"{count} pairs, {mode}, round",
                r["round_s"],
                "s",
                "calls / limit (floor)",
                r["floor_s"],
                calls,
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, nargs="+", default=list(PAIR_COUNTS))
    args = parser.parse_args()
    began = time.perf_counter()
    rows = measure(tuple(args.pairs))
    print("\none live polling round against the double, at the venues' read limits\n")
    header = (
        f"{'pairs':>6}  {'mode':<18} {'Kalshi':>7} {'Poly':>6} {'work ms':>8} {'round s':>8} {'floor s':>8}"
    )
    print(header)
    print("-" * len(header))
    for count, mode, r in rows:
        print(
            f"{count:>6}  {mode:<18} {r['kalshi_calls']:>7} {r['poly_calls']:>6} "
            f"{r['work_s'] * 1000:>8.1f} {r['round_s']:>8.2f} {r['floor_s']:>8.2f}"
        )
    print(f"\n(measured in {time.perf_counter() - began:.1f} s)")


if __name__ == "__main__":
    main()
