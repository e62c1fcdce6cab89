"""Fixtures for the engine, service, command and worker tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

import pytest

from exchanges.books import KALSHI, POLYMARKET, Book, Level
from simulator.core import ExchangeValidation, IntentLeg, LegValidation
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
