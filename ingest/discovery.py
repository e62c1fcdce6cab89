"""Propose market pairs from the two venues' market lists (pure apart from reading files).

A candidate is a Kalshi market and a Polymarket market whose close times are within
`tolerance_s` of each other and whose titles match (rapidfuzz `token_set_ratio` on normalised
titles, 0-100, at least `min_score`). Candidates are ranked by title score, then by the smaller
close-time gap. Nothing is imported: write them out (`as_fixture`), review, then `pairs_import`.

Inputs are the venues' own list shapes, as JSON files (the exchange double serves no market
list, and the read adapters do not list markets):

- Kalshi `GET /markets`: `{"markets": [{"ticker", "title", "close_time", ...}]}` (or the list);
- Polymarket CLOB `GET /markets`: `{"data": [{"condition_id", "question", "end_date_iso",
  "tokens": [{"token_id", "outcome": "Yes"|"No"}]}]}` (or the list).
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rapidfuzz import fuzz, utils

from exchanges.fees import kalshi_taker_rate

DEFAULT_TOLERANCE_S = 2 * 86400
DEFAULT_MIN_SCORE = 60.0


class MarketListError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class KalshiListing:
    ticker: str
    title: str
    close_time: datetime


@dataclass(frozen=True, slots=True)
class PolymarketListing:
    condition_id: str
    title: str
    close_time: datetime
    yes_token: str
    no_token: str


@dataclass(frozen=True, slots=True)
class Candidate:
    kalshi: KalshiListing
    polymarket: PolymarketListing
    title_score: float
    close_gap_s: float
    known: bool = False  # a MarketPair with this ticker and these tokens exists already

    @property
    def opportunity_key(self) -> str:
        key = re.sub(r"[^A-Za-z0-9_.:-]", "-", self.kalshi.ticker).strip("-_.:")
        return key[:64] or "PAIR"

    def as_fixture(self) -> dict[str, Any]:
        """A pair mapping `pairs_import` accepts."""

        def iso(value: datetime) -> str:
            return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

        return {
            "opportunity_key": self.opportunity_key,
            "title": self.kalshi.title[:300],
            "kalshi_ticker": self.kalshi.ticker,
            "kalshi_title": self.kalshi.title[:300],
            "kalshi_close_time": iso(self.kalshi.close_time),
            "poly_condition_id": self.polymarket.condition_id,
            "poly_yes_token": self.polymarket.yes_token,
            "poly_no_token": self.polymarket.no_token,
            "poly_title": self.polymarket.title[:300],
            "poly_close_time": iso(self.polymarket.close_time),
            "alignment_tolerance_s": max(86400, int(self.close_gap_s) + 1),
            "kalshi_fee_rate": str(kalshi_taker_rate(self.kalshi.ticker)),
            "poly_fee_rate": "0",
        }


def _time(value: Any, what: str) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise MarketListError(f"{what}: expected an ISO 8601 date-time")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise MarketListError(f"{what}: not an ISO 8601 date-time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _rows(data: Any, wrapper: str, what: str) -> list[Mapping[str, Any]]:
    if isinstance(data, Mapping):
        data = data.get(wrapper)
    if not isinstance(data, list):
        raise MarketListError(f"{what}: expected a list of markets or {{{wrapper!r}: [...]}}")
    return data


def kalshi_listings(data: Any) -> list[KalshiListing]:
    listings = []
    for index, row in enumerate(_rows(data, "markets", "Kalshi markets")):
        what = f"Kalshi market {index + 1} ({row.get('ticker', '?')})"
        if not row.get("ticker"):
            raise MarketListError(f"{what}: ticker: required")
        if row.get("status") in ("closed", "determined", "finalized", "settled"):
            continue
        listings.append(
            KalshiListing(
                ticker=str(row["ticker"]),
                title=str(row.get("title") or row.get("yes_sub_title") or row["ticker"]),
                close_time=_time(row.get("close_time"), f"{what}: close_time"),
            )
        )
    return listings


def polymarket_listings(data: Any) -> list[PolymarketListing]:
    listings = []
    for index, row in enumerate(_rows(data, "data", "Polymarket markets")):
        what = f"Polymarket market {index + 1} ({row.get('condition_id', '?')})"
        if row.get("closed") is True or row.get("active") is False:
            continue
        tokens = {
            str(t.get("outcome", "")).lower(): str(t.get("token_id", "")) for t in row.get("tokens") or []
        }
        if not tokens.get("yes") or not tokens.get("no"):
            continue  # not a yes/no market
        listings.append(
            PolymarketListing(
                condition_id=str(row.get("condition_id", "")),
                title=str(row.get("question") or row.get("title") or ""),
                close_time=_time(row.get("end_date_iso") or row.get("end_date"), f"{what}: end_date_iso"),
                yes_token=tokens["yes"],
                no_token=tokens["no"],
            )
        )
    return listings


def load_market_list(path: str | Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise MarketListError(f"{path}: cannot read: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise MarketListError(f"{path}: not JSON: {error}") from None


def title_score(kalshi_title: str, poly_title: str) -> float:
    return float(fuzz.token_set_ratio(kalshi_title, poly_title, processor=utils.default_process))


def propose_pairs(
    kalshi: Iterable[KalshiListing],
    polymarket: Iterable[PolymarketListing],
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    min_score: float = DEFAULT_MIN_SCORE,
    known: Iterable[tuple[str, str, str]] = (),
) -> list[Candidate]:
    """Every (Kalshi, Polymarket) match within the close-time tolerance and above `min_score`,
    best first. `known` holds (ticker, yes token, no token) triples already paired."""
    poly = sorted(polymarket, key=lambda p: p.close_time)
    poly_times = [p.close_time.timestamp() for p in poly]
    known_set = set(known)
    candidates = []
    for market in kalshi:
        at = market.close_time.timestamp()
        low = bisect.bisect_left(poly_times, at - tolerance_s)
        high = bisect.bisect_right(poly_times, at + tolerance_s)
        for listing in poly[low:high]:
            score = title_score(market.title, listing.title)
            if score < min_score:
                continue
            candidates.append(
                Candidate(
                    kalshi=market,
                    polymarket=listing,
                    title_score=round(score, 1),
                    close_gap_s=abs(listing.close_time.timestamp() - at),
                    known=(market.ticker, listing.yes_token, listing.no_token) in known_set,
                )
            )
    candidates.sort(key=lambda c: (-c.title_score, c.close_gap_s, c.kalshi.ticker, c.polymarket.condition_id))
    return candidates


def one_to_one(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Greedy best-first matching: each Kalshi market and each Polymarket market used once
    (what a fixture of proposals should hold; the ranked table shows every candidate)."""
    used_kalshi: set[str] = set()
    used_poly: set[str] = set()
    chosen = []
    for candidate in candidates:
        poly_id = candidate.polymarket.yes_token
        if candidate.kalshi.ticker in used_kalshi or poly_id in used_poly:
            continue
        used_kalshi.add(candidate.kalshi.ticker)
        used_poly.add(poly_id)
        chosen.append(candidate)
    return chosen
