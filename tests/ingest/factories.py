"""Factories for the ingest tests: market pairs, a running simulator run, scripted books."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import factory

from exchanges.books import NO, YES, kalshi_books, polymarket_book
from ingest.detector import PairSpec
from ingest.models import MarketPair
from ingest.pairs import spec_of
from ingest.recording import kalshi_update, polymarket_update
from ingest.sources import BookUpdate
from simulator.models import SimulatorRun
from tests.accounts.factories import UserFactory

D = Decimal


class MarketPairFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MarketPair
        django_get_or_create = ("opportunity_key",)

    opportunity_key = factory.Sequence(lambda n: f"PAIR-{n}")
    title = factory.LazyAttribute(lambda p: f"Question {p.opportunity_key}")
    kalshi_ticker = factory.LazyAttribute(lambda p: f"KX{p.opportunity_key}-26DEC-T50")
    poly_yes_token = factory.Sequence(lambda n: f"1{n:06d}1")
    poly_no_token = factory.Sequence(lambda n: f"2{n:06d}2")
    kalshi_fee_rate = D("0.07")
    poly_fee_rate = D("0")


class RunningRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SimulatorRun

    user = factory.SubFactory(UserFactory)
    status = SimulatorRun.RUNNING
    starting_usd = D("1000")
    balance_usd = D("1000")
    min_net_edge_cents = D("1")
    max_leg_usd = D("10")
    started_at = factory.LazyFunction(lambda: datetime.now(UTC))
    ends_at = factory.LazyFunction(lambda: datetime.now(UTC) + timedelta(days=1))
    seed = 7


def update_with_edge(pair: PairSpec, at_ms: int, edge_cents: int, *, size: int = 50) -> BookUpdate:
    """One update carrying all four books of `pair`, whose best 1-contract net edge is `edge_cents`
    (YES on Kalshi at 0.45, whose 1-contract fee is 2c, + NO on Polymarket at (53 - edge)c).
    The other direction is far out of the money."""
    kalshi = kalshi_books(
        pair.kalshi_ticker, [(D("0.10"), D(size))], [(D("0.55"), D(size))], received_ts_ms=at_ms
    )
    no_ask = D(53 - edge_cents) / 100
    poly_yes = polymarket_book(pair.poly_yes_token, YES, [], [(D("0.90"), D(80))], received_ts_ms=at_ms)
    poly_no = polymarket_book(pair.poly_no_token, NO, [], [(no_ask, D(80))], received_ts_ms=at_ms)
    raw = kalshi_update(at_ms, pair.kalshi_ticker, [("0.10", size)], [("0.55", size)])
    return BookUpdate(at_ms, (kalshi[YES], kalshi[NO], poly_yes, poly_no), raw)


def kalshi_only_update(pair: PairSpec, at_ms: int) -> BookUpdate:
    kalshi = kalshi_books(
        pair.kalshi_ticker, [(D("0.10"), D(50))], [(D("0.55"), D(50))], received_ts_ms=at_ms
    )
    raw = kalshi_update(at_ms, pair.kalshi_ticker, [("0.10", 50)], [("0.55", 50)])
    return BookUpdate(at_ms, (kalshi[YES], kalshi[NO]), raw)


def poly_update_raw(token: str, at_ms: int, asks: list[tuple[str, str]]) -> dict:
    return polymarket_update(at_ms, token, [], asks, venue_ts_ms=at_ms)


def pair_spec(**kwargs) -> PairSpec:
    return spec_of(MarketPairFactory(**kwargs))
