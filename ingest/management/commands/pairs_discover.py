"""Propose market pairs from both venues' market lists: a ranked table, optionally a fixture."""

from __future__ import annotations

from pathlib import Path

import yaml
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ingest.discovery import (
    DEFAULT_MIN_SCORE,
    DEFAULT_TOLERANCE_S,
    MarketListError,
    kalshi_listings,
    load_market_list,
    one_to_one,
    polymarket_listings,
    propose_pairs,
)
from ingest.models import MarketPair


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class Command(BaseCommand):
    help = (
        "Rank candidate pairs: close times within a tolerance and fuzzy title match. Reads the "
        "venues' market lists from JSON files (Kalshi GET /markets, Polymarket CLOB GET /markets)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--kalshi-markets", type=Path, required=True, help="JSON: Kalshi market list")
        parser.add_argument(
            "--polymarket-markets", type=Path, required=True, help="JSON: Polymarket market list"
        )
        parser.add_argument(
            "--tolerance-s",
            type=float,
            default=DEFAULT_TOLERANCE_S,
            help="max close-time gap (default 2 days)",
        )
        parser.add_argument(
            "--min-score", type=float, default=DEFAULT_MIN_SCORE, help="min title score 0-100 (default 60)"
        )
        parser.add_argument("--limit", type=int, default=50, help="rows to print (default 50)")
        parser.add_argument(
            "--out", type=Path, help="also write the new candidates as a pairs_import fixture"
        )

    def handle(self, *args: object, **options: object) -> None:
        try:
            kalshi = kalshi_listings(load_market_list(options["kalshi_markets"]))
            poly = polymarket_listings(load_market_list(options["polymarket_markets"]))
        except MarketListError as exc:
            raise CommandError(str(exc)) from exc
        known = MarketPair.objects.values_list("kalshi_ticker", "poly_yes_token", "poly_no_token")
        candidates = propose_pairs(
            kalshi, poly, tolerance_s=options["tolerance_s"], min_score=options["min_score"], known=known
        )
        self.stdout.write(
            f"{len(kalshi)} Kalshi and {len(poly)} Polymarket markets -> {len(candidates)} candidates"
        )
        header = f"{'#':>3}  {'score':>5}  {'gap h':>6}  {'kalshi ticker':<28}  {'kalshi title':<40}  polymarket title"
        self.stdout.write(header)
        for rank, candidate in enumerate(candidates[: options["limit"]], start=1):
            self.stdout.write(
                f"{rank:>3}  {candidate.title_score:>5.1f}  {candidate.close_gap_s / 3600:>6.1f}  "
                f"{_clip(candidate.kalshi.ticker, 28):<28}  {_clip(candidate.kalshi.title, 40):<40}  "
                f"{_clip(candidate.polymarket.title, 60)}{'  (known)' if candidate.known else ''}"
            )
        if options["out"]:
            fresh = [c.as_fixture() for c in one_to_one(candidates) if not c.known]
            options["out"].write_text(
                yaml.safe_dump(fresh, sort_keys=False, allow_unicode=True), encoding="utf-8"
            )
            self.stdout.write(f"wrote {len(fresh)} candidates to {options['out']}: review, then pairs_import")
