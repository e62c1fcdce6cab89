"""Fixtures for the engine, service, command and worker tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

import pytest

from exchanges.books import KALSHI, POLYMARKET, Book, Level
from simulator.core import ExchangeValidation, IntentLeg, LegOrder, LegValidation
from tests.simulator.factories import NOW, MarketPairFactory, trader

D = Decimal


class BookValidator:
    """A stand-in for exchange validation: serves the books it is given (asks at each leg's
    limit by default) and counts calls. Engine tests that are not about the exchange use it."""

    def __init__(
        self, *, asks: Sequence[tuple[str, str]] | None = None, depth: str | None = None, balance: str = "500"
    ) -> None:
        self.asks = asks
        self.depth = depth
        self.balances = {KALSHI: D(balance), POLYMARKET: D(balance)}
        self.calls = 0

    def __call__(self, user_id: int, legs: Sequence[IntentLeg], now: datetime) -> ExchangeValidation:
        self.calls += 1
        validated = []
        for leg in legs:
            ladder = (
                self.asks if self.asks is not None else [(str(leg.limit_price), self.depth or str(leg.size))]
            )
            book = Book(
                venue=leg.venue,
                instrument_id=leg.instrument_id,
                side=leg.side,
                asks=tuple(Level(D(price), D(size)) for price, size in ladder),
                received_ts_ms=int(now.timestamp() * 1000),
            )
            validated.append(
                LegValidation(
                    leg.venue, leg.instrument_id, leg.side, True, "ok", "", True, book, latency_ms=5
                )
            )
        return ExchangeValidation(ok=True, legs=tuple(validated), balances_usd=dict(self.balances))


class ArrivalBooks:
    """The books orders meet at arrival, per venue: asks and bids given as (price, size) pairs;
    a venue left out answers nothing (unreachable). Counts the reads."""

    def __init__(self, **ladders: tuple[list[tuple[str, str]], list[tuple[str, str]]]) -> None:
        self.ladders = ladders
        self.reads: list[tuple[str, datetime]] = []

    def __call__(self, user_id: int, order: LegOrder, at: datetime) -> tuple[Book | None, str]:
        self.reads.append((order.venue, at))
        if order.venue not in self.ladders:
            return None, "no book at arrival: unreachable"
        asks, bids = self.ladders[order.venue]
        return (
            Book(
                venue=order.venue,
                instrument_id=order.instrument_id,
                side=order.side,
                asks=tuple(Level(D(p), D(s)) for p, s in asks),
                bids=tuple(Level(D(p), D(s)) for p, s in bids),
                received_ts_ms=int(at.timestamp() * 1000),
            ),
            "",
        )


# The default intent's books at arrival as they were at decision, deep enough that the default
# competition (others take up to a fifth of each level first) leaves the whole order.
UNCHANGED_BOOKS = {
    "kalshi": ([("0.45", "20")], [("0.44", "50")]),
    "polymarket": ([("0.50", "20")], [("0.49", "50")]),
}


@pytest.fixture
def book_validator() -> BookValidator:
    return BookValidator()


@pytest.fixture
def pair(db):
    return MarketPairFactory(opportunity_key="NYC-HIGH-50F")


@pytest.fixture
def trading_user(db):
    return trader()


@pytest.fixture
def sim_now() -> datetime:
    return NOW


ON_POSTGRES = "postgresql" in __import__("django.conf").conf.settings.DATABASES["default"]["ENGINE"]
needs_postgres = pytest.mark.skipif(
    not ON_POSTGRES, reason="needs PostgreSQL (row locks, concurrent transactions)"
)


@pytest.fixture
def eager_tasks():
    """Run dispatched tasks in-process even when REDIS_URL points Celery at a broker."""
    from config.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before
