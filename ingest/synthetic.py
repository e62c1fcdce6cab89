"""A SEEDED, SYNTHETIC market-data recording: plausible, not real (nothing here came from a venue).

Each pair has a fair probability that random-walks slowly; each venue quotes around it with its
own small mean-reverting offset, a spread of one to three cents and five levels of depth. A few
times an hour per pair (at least once in every full hour), the venues drift apart for 20 to 90
seconds, far enough that buying YES on the cheap venue and NO on the other clears a few cents per
contract after fees; then they converge again. Those episodes are what the demo shows.

Update timing: each venue of each pair updates at random (exponential gaps, never more than one
second apart, as a 1 s poller would). A Polymarket update writes two lines, the YES token's book
and the NO token's mirror book. `updates_per_s` sets the random (exponential) line rate per pair;
the one-second cap adds to it, so the default 4.0 gives about 5.5 lines per pair per second
(3 pairs: about 59,000 lines an hour, 1.4 million a day). The same arguments and seed always give
the same file, byte for byte.

The random walk uses floats: it only decides which whole-cent levels to quote, and the output is
strings, as the venues send them.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exchanges.fees import kalshi_taker_schedule, polymarket_taker_schedule
from ingest.detector import PairSpec
from ingest.recording import RecordingWriter

DEFAULT_START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DEFAULT_UPDATES_PER_S = 4.0
LEVELS = 5
MAX_GAP_S = 1.0
PROGRESS_EVERY_LINES = 10_000
FAIR_VOLATILITY_PER_SQRT_S = 0.0004  # about 2.4 cents an hour
OFFSET_SD = 0.004  # a venue's own offset from the fair value, in dollars
OFFSET_HALF_LIFE_S = 60.0

# (opportunity key, Kalshi ticker): real-looking names for the first few pairs.
NAMED_PAIRS = (
    ("FED-DEC-CUT", "KXFEDDECISION-26DEC-C25"),
    ("BTC-150K-2026", "KXBTCMAXY-26DEC31-T150000"),
    ("NYC-SNOW-JAN", "KXSNOWNYM-26JAN-T10"),
    ("CPI-JAN-ABOVE-3", "KXCPIYOY-26JAN-T3.0"),
    ("SUPERBOWL-KC", "KXSB-26-KC"),
    ("RECESSION-2026", "KXRECSSNBER-26"),
)


def synthetic_pairs(count: int = 3, seed: int = 7) -> list[PairSpec]:
    """The pairs a synthetic recording uses: named ones first, then `SYN-0007`-style keys."""
    rng = random.Random(f"pairs:{seed}")
    pairs = []
    for index in range(count):
        if index < len(NAMED_PAIRS):
            key, ticker = NAMED_PAIRS[index]
        else:
            key, ticker = f"SYN-{index:04d}", f"KXSYN{index:04d}-26DEC-T50"
        yes_token, no_token = (str(rng.getrandbits(254) | (1 << 253)) for _ in range(2))
        pairs.append(
            PairSpec(
                opportunity_key=key,
                kalshi_ticker=ticker,
                poly_yes_token=yes_token,
                poly_no_token=no_token,
                kalshi_fees=kalshi_taker_schedule(ticker),
                poly_fees=polymarket_taker_schedule(),
            )
        )
    return pairs


@dataclass(frozen=True, slots=True)
class Episode:
    start_s: float
    duration_s: float
    divergence: float  # dollars by which the venues' fair values move apart at full strength
    sign: int  # +1: Polymarket above Kalshi (buy YES on Kalshi), -1: the reverse

    def strength(self, at_s: float) -> float:
        ramp_s = 3.0
        into = at_s - self.start_s
        if into < 0 or into > self.duration_s:
            return 0.0
        return min(1.0, into / ramp_s, (self.duration_s - into) / ramp_s)


def _episodes(rng: random.Random, total_s: float) -> list[Episode]:
    episodes = []
    for hour in range(math.ceil(total_s / 3600)):
        window_start, window_end = hour * 3600 + 30.0, min((hour + 1) * 3600.0, total_s) - 120.0
        if window_end <= window_start:
            continue
        count = 1 + (rng.random() < 0.6) + (rng.random() < 0.3)
        starts = sorted(rng.uniform(window_start, window_end) for _ in range(count))
        last_end = -1.0
        for start in starts:
            duration = rng.uniform(20.0, 90.0)
            # Fees (about 2 cents at 1 contract) + both half spreads + rounding + the target edge.
            divergence = rng.uniform(0.08, 0.12)
            if start > last_end + 10:
                episodes.append(Episode(start, duration, divergence, rng.choice((1, -1))))
                last_end = start + duration
    return episodes


@dataclass(slots=True)
class _PairState:
    spec: PairSpec
    episodes: list[Episode]
    fair: float
    kalshi_offset: float
    poly_offset: float
    last_s: float


def _advance(state: _PairState, rng: random.Random, at_s: float) -> None:
    dt = at_s - state.last_s
    if dt <= 0:
        return
    state.fair += rng.gauss(0.0, FAIR_VOLATILITY_PER_SQRT_S * math.sqrt(dt))
    if state.fair < 0.1 or state.fair > 0.9:
        state.fair = min(0.9, max(0.1, state.fair))
    keep = 0.5 ** (dt / OFFSET_HALF_LIFE_S)
    shock = OFFSET_SD * math.sqrt(1 - keep * keep)
    state.kalshi_offset = state.kalshi_offset * keep + rng.gauss(0.0, shock)
    state.poly_offset = state.poly_offset * keep + rng.gauss(0.0, shock)
    state.last_s = at_s


def _divergence(state: _PairState, at_s: float) -> float:
    total = 0.0
    for episode in state.episodes:
        if episode.start_s <= at_s <= episode.start_s + episode.duration_s:
            total += episode.sign * episode.divergence * episode.strength(at_s)
    return total


def _quote_cents(rng: random.Random, fair: float) -> tuple[int, int]:
    """Best YES bid and ask in whole cents around `fair`, one to three cents apart."""
    half_spread = rng.choice((0.005, 0.005, 0.01, 0.015))
    bid = max(1, min(97, math.floor((fair - half_spread) * 100)))
    ask = max(bid + 1, min(99, math.ceil((fair + half_spread) * 100)))
    return bid, ask


def _ladder(rng: random.Random, best_cents: int, step: int, low: int, high: int) -> list[tuple[int, int]]:
    levels = []
    for k in range(LEVELS):
        cents = best_cents + step * k
        if low <= cents <= high:
            levels.append((cents, rng.randint(10, 400)))
    return levels


def _kalshi_line(rng: random.Random, state: _PairState, t_ms: int, at_s: float) -> dict[str, Any]:
    fair = state.fair + state.kalshi_offset - _divergence(state, at_s) / 2
    bid, ask = _quote_cents(rng, fair)
    yes_bids = _ladder(rng, bid, -1, 1, 99)
    no_bids = _ladder(rng, 100 - ask, -1, 1, 99)
    # Kalshi lists bids ascending, best last.
    return {
        "t": t_ms,
        "venue": "kalshi",
        "id": state.spec.kalshi_ticker,
        "yes": [[f"0.{c:02d}00", f"{n}.00"] for c, n in reversed(yes_bids)],
        "no": [[f"0.{c:02d}00", f"{n}.00"] for c, n in reversed(no_bids)],
    }


def _poly_lines(rng: random.Random, state: _PairState, t_ms: int, at_s: float) -> list[dict[str, Any]]:
    fair = state.fair + state.poly_offset + _divergence(state, at_s) / 2
    bid, ask = _quote_cents(rng, fair)
    bids = _ladder(rng, bid, -1, 1, 99)
    asks = _ladder(rng, ask, 1, 1, 99)
    venue_ts = t_ms - rng.randint(15, 120)

    def levels(ladder: list[tuple[int, int]], mirror: bool) -> list[dict[str, str]]:
        # Polymarket serves bids ascending and asks descending: the best is last either way.
        return [{"price": f"0.{(100 - c if mirror else c):02d}", "size": str(n)} for c, n in reversed(ladder)]

    # The NO token's book mirrors the YES token's: a NO bid at 1 - p is a YES ask at p.
    return [
        {
            "t": t_ms,
            "venue": "polymarket",
            "id": state.spec.poly_yes_token,
            "vts": venue_ts,
            "bids": levels(bids, False),
            "asks": levels(asks, False),
        },
        {
            "t": t_ms,
            "venue": "polymarket",
            "id": state.spec.poly_no_token,
            "vts": venue_ts,
            "bids": levels(asks, True),
            "asks": levels(bids, True),
        },
    ]


def iter_updates(
    pairs: list[PairSpec],
    *,
    hours: float = 1.0,
    seed: int = 7,
    updates_per_s: float = DEFAULT_UPDATES_PER_S,
    start_ms: int = DEFAULT_START_MS,
) -> Iterator[dict[str, Any]]:
    """The recording's update lines, in time order, without writing a file."""
    rng = random.Random(seed)
    total_s = hours * 3600.0
    states = [
        _PairState(spec, _episodes(rng, total_s), rng.uniform(0.25, 0.75), 0.0, 0.0, 0.0) for spec in pairs
    ]
    # Kalshi events write one line, Polymarket events two: split the line rate evenly.
    rates = {"kalshi": updates_per_s / 2, "polymarket": updates_per_s / 4}
    heap = [(rng.uniform(0, MAX_GAP_S), index, venue) for index in range(len(states)) for venue in rates]
    heapq.heapify(heap)
    while heap:
        at_s, index, venue = heapq.heappop(heap)
        if at_s >= total_s:
            continue
        state = states[index]
        _advance(state, rng, at_s)
        t_ms = start_ms + int(at_s * 1000)
        if venue == "kalshi":
            yield _kalshi_line(rng, state, t_ms, at_s)
        else:
            yield from _poly_lines(rng, state, t_ms, at_s)
        heapq.heappush(heap, (at_s + min(rng.expovariate(rates[venue]), MAX_GAP_S), index, venue))


def episodes_of(pairs: list[PairSpec], *, hours: float = 1.0, seed: int = 7) -> dict[str, list[Episode]]:
    """The divergence episodes a recording with these arguments contains (for tests and demos)."""
    rng = random.Random(seed)
    total_s = hours * 3600.0
    episodes = {}
    for spec in pairs:
        episodes[spec.opportunity_key] = _episodes(rng, total_s)
        rng.uniform(0.25, 0.75)
    return episodes


def generate(
    path: str | Path,
    pairs: int = 3,
    hours: float = 1.0,
    seed: int = 7,
    updates_per_s: float = DEFAULT_UPDATES_PER_S,
    start_ms: int = DEFAULT_START_MS,
    on_progress: Callable[[int, float], None] | None = None,
) -> int:
    """Write a synthetic recording to `path`; returns the number of update lines.
    `on_progress(lines, seconds of data written)` is called every PROGRESS_EVERY_LINES lines."""
    specs = synthetic_pairs(pairs, seed)
    source = f"synthetic seed={seed} pairs={pairs} hours={hours} updates_per_s={updates_per_s}"
    with RecordingWriter(path, pairs=specs, source=source) as writer:
        for update in iter_updates(
            specs, hours=hours, seed=seed, updates_per_s=updates_per_s, start_ms=start_ms
        ):
            writer.append(update)
            if on_progress is not None and writer.count % PROGRESS_EVERY_LINES == 0:
                on_progress(writer.count, (update["t"] - start_ms) / 1000)
        return writer.count
