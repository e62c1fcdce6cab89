"""Propose market pairs from both venues' market lists: a ranked table, optionally a fixture."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import yaml
from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.numbers import DecimalRule, WholeRule, option_type
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

TOLERANCE_S = DecimalRule(Decimal("0"), Decimal("31536000"), places=3, unit="seconds")  # up to a year
MIN_SCORE = DecimalRule(Decimal("0"), Decimal("100"), places=2)
LIMIT = WholeRule(0, 1_000_000, unit="rows")


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
            type=option_type(TOLERANCE_S, float),
            default=DEFAULT_TOLERANCE_S,
            help=f"max close-time gap (default 2 days; {TOLERANCE_S.accepted()})",
        )
        parser.add_argument(
            "--min-score",
            type=option_type(MIN_SCORE, float),
            default=DEFAULT_MIN_SCORE,
            help=f"min title score (default 60; {MIN_SCORE.accepted()})",
        )
        parser.add_argument(
            "--limit",
            type=option_type(LIMIT),
            default=50,
            help=f"rows to print (default 50; {LIMIT.accepted()})",
        )
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
