"""Factories for the engine and service tests: market pairs, intents, spans, profiles, keys.

The default intent is the core tests' scenario (tests/simulator/__init__.py): YES on Kalshi at
0.45 + NO on Polymarket at 0.50, 10 contracts; Kalshi's taker fee $0.18, cost $9.68, 3.20c edge.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import factory

from accounts.models import UserProfile
from accounts.services import set_secret
from exchanges.books import KALSHI, NO, POLYMARKET, YES, Level
from exchanges.double import ExchangeDouble, Scenario
from exchanges.testing import TEST_POLYMARKET_PRIVATE_KEY, kalshi_key_pair
from ingest.models import ExecutionIntent, MarketPair, SuccessSpan
from simulator.core.execution import ARRIVED, IOC, SENT, LegOrder, Unwind
from simulator.core.types import Fill
from tests.accounts.factories import UserFactory

D = Decimal
NOW = datetime(2025, 11, 25, 15, 0, 0, tzinfo=UTC)
KALSHI_KEY_ID = "sim-engine-key"
# The crossed pair of the exchange double's demo scenario (`Scenario.demo()`).
DEMO_TICKER = "FED-25DEC-T4.00"
DEMO_YES_TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
DEMO_NO_TOKEN = "52114319501245915516055106046884209969926127482827954674443846427813813222426"


class MarketPairFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MarketPair
        django_get_or_create = ("opportunity_key",)

    opportunity_key = factory.Sequence(lambda n: f"NYC-HIGH-{n}")
    title = factory.LazyAttribute(lambda p: f"Question {p.opportunity_key}")
    kalshi_ticker = factory.LazyAttribute(lambda p: f"KX{p.opportunity_key}")
    poly_yes_token = factory.Sequence(lambda n: f"7132104567925221259{n:04d}1")
    poly_no_token = factory.Sequence(lambda n: f"5211431950124591551{n:04d}2")


def intent_legs(
    pair: MarketPair, *, kalshi_limit: str = "0.45", polymarket_limit: str = "0.50", size: str = "10"
) -> list[dict[str, str]]:
    return [
        {
            "venue": KALSHI,
            "instrument_id": pair.kalshi_ticker,
            "side": YES,
            "limit_price": kalshi_limit,
            "size": size,
        },
        {
            "venue": POLYMARKET,
            "instrument_id": pair.poly_no_token,
            "side": NO,
            "limit_price": polymarket_limit,
            "size": size,
        },
    ]


class ExecutionIntentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ExecutionIntent

    user = factory.SubFactory(UserFactory)
    pair = factory.SubFactory(MarketPairFactory)
    opportunity_key = factory.LazyAttribute(lambda i: i.pair.opportunity_key)
    direction = "kalshi_yes_poly_no"
    net_edge_cents = D("3.20")
    size = D("10")
    fees_usd = D("0.18")
    cost_usd = D("9.50")
    legs = factory.LazyAttribute(lambda i: intent_legs(i.pair, size=str(i.size)))
    books = factory.LazyFunction(list)
    signal_at = NOW


class SuccessSpanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SuccessSpan

    span_key = factory.Sequence(lambda n: f"span-{n}")
    pair = factory.SubFactory(MarketPairFactory)
    opportunity_key = factory.LazyAttribute(lambda s: s.pair.opportunity_key)
    direction = "kalshi_yes_poly_no"
    threshold_cents = D("1")
    started_at = NOW
    peak_edge_cents = D("3.20")
    mean_edge_cents = D("3.20")
    last_edge_cents = D("3.20")
    max_size = D("10")


def set_thresholds(
    user, min_edge: str | None = "1.00", max_leg: str | None = "100", daily_cap: str | None = "1000"
):
    profile, _ = UserProfile.objects.get_or_create(user=user)
    profile.min_net_edge_cents = D(min_edge) if min_edge is not None else None
    profile.max_leg_usd = D(max_leg) if max_leg is not None else None
    profile.daily_cap_usd = D(daily_cap) if daily_cap is not None else None
    profile.save()
    return profile


def give_keys(
    user, *, kalshi_host: str | None = None, polymarket_host: str | None = None, venues=(KALSHI, POLYMARKET)
):
    """Save real-format secrets for the user; hosts point the adapters at the exchange double."""
    if KALSHI in venues:
        private_pem, _ = kalshi_key_pair()
        extra = {"private_key": private_pem, **({"host": kalshi_host} if kalshi_host else {})}
        set_secret(user=user, exchange=KALSHI, api_key=KALSHI_KEY_ID, extra=extra)
    if POLYMARKET in venues:
        extra = {
            "private_key": TEST_POLYMARKET_PRIVATE_KEY,
            **({"host": polymarket_host} if polymarket_host else {}),
        }
        set_secret(user=user, exchange=POLYMARKET, extra=extra)


def trader(**thresholds):
    """A user with thresholds set and keys for both venues saved."""
    user = UserFactory()
    set_thresholds(user, **thresholds)
    give_keys(user)
    return user


@contextmanager
def demo_double() -> Iterator[ExchangeDouble]:
    """The exchange double on loopback with its demo books, and `KALSHI_KEY_ID` registered with
    $500 on Kalshi."""
    _, public_pem = kalshi_key_pair()
    with ExchangeDouble(Scenario.demo()) as running:
        running.state.register_kalshi_key(KALSHI_KEY_ID, public_pem, balance_cents=50_000)
        yield running


Ladder = Sequence[tuple[str, str]]


def _levels(ladder: Ladder | None) -> tuple[Level, ...] | None:
    return None if ladder is None else tuple(Level(D(price), D(size)) for price, size in ladder)


def leg_order_json(
    *,
    venue: str = KALSHI,
    instrument_id: str = "KXFED",
    side: str = YES,
    limit_price: str = "0.45",
    size: str = "10",
    decided_at: datetime = NOW,
    latency_ms: int = 120,
    book: Ladder = (("0.44", "30"),),
    arrival_book: Ladder | None = (("0.44", "30"),),
    arrival_available: Ladder | None = None,
    fills: Ladder = (("0.44", "10"),),
    fee_usd: str = "0",
    detail: str = "",
    unhedged_size: str = "0",
    carried_size: str = "0",
    carried_mark_usd: str = "0",
    unwind: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One leg of a trade as the engine stores it (`LegOrder.as_json()`): sent at `decided_at`,
    arrived `latency_ms` later (`arrival_book=None`: still on its way). `unwind` takes Unwind's
    fields by name, its ladder as `bids` (None: on its way), sent `sent_after_ms` after the
    decision (default: at this leg's arrival) and arriving its `latency_ms` later."""
    arrived = arrival_book is not None
    arrived_at = decided_at + timedelta(milliseconds=latency_ms)
    sale = None
    if unwind is not None:
        unwind = dict(unwind)
        unwind_latency = unwind.pop("latency_ms", 150)
        bids = unwind.pop("bids", None)
        sent_at = decided_at + timedelta(milliseconds=unwind.pop("sent_after_ms", latency_ms))
        sale = Unwind(
            size=D(unwind.pop("size")),
            latency_ms=unwind_latency,
            sent_at=sent_at,
            arrived_at=sent_at + timedelta(milliseconds=unwind_latency),
            book=_levels(bids),
            fills=tuple(Fill(D(p), D(n)) for p, n in unwind.pop("fills", ())),
            fee_usd=D(unwind.pop("fee_usd", "0")),
            proceeds_usd=D(unwind.pop("proceeds_usd", "0")),
            detail=unwind.pop("detail", ""),
        )
        assert not unwind, f"unknown unwind fields: {sorted(unwind)}"
    order = LegOrder(
        venue=venue,
        instrument_id=instrument_id,
        side=side,
        limit_price=D(limit_price),
        order_type=IOC,
        size=D(size),
        latency_ms=latency_ms,
        unwind_latency_ms=150,
        book=_levels(book) or (),
        book_available=_levels(book) or (),
        state=ARRIVED if arrived else SENT,
        sent_at=decided_at,
        arrived_at=arrived_at,
        arrival_book=_levels(arrival_book),
        arrival_available=_levels(arrival_available if arrival_available is not None else arrival_book)
        if arrived
        else None,
        book_ts_ms=int(arrived_at.timestamp() * 1000) if arrived else None,
        fills=tuple(Fill(D(p), D(n)) for p, n in fills) if arrived else (),
        fee_usd=D(fee_usd),
        detail=detail,
        unhedged_size=D(unhedged_size),
        carried_size=D(carried_size),
        carried_mark_usd=D(carried_mark_usd),
        unwind=sale,
    )
    return order.as_json()
