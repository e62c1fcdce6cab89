"""Factories for the engine and service tests: market pairs, intents, spans, profiles, keys.

The default intent is the core tests' scenario (tests/simulator/__init__.py): YES on Kalshi at
0.45 + NO on Polymarket at 0.50, 10 contracts; Kalshi's taker fee $0.18, cost $9.68, 3.20c edge.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal

import factory

from accounts.models import UserProfile
from accounts.services import set_secret
from exchanges.books import KALSHI, NO, POLYMARKET, YES
from exchanges.double import ExchangeDouble, Scenario
from exchanges.testing import TEST_POLYMARKET_PRIVATE_KEY, kalshi_key_pair
from ingest.models import ExecutionIntent, MarketPair, SuccessSpan
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
