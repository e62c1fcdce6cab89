"""The pure core's inputs, built from the engine's rows: the run's limits and state, the
intent (or a span start's stand-in), the user's keys, the pair's fee schedules."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

import orjson

from exchanges.books import KALSHI, NO, POLYMARKET, YES
from exchanges.fees import FeeSchedule
from ingest.models import ExecutionIntent, MarketPair, SuccessSpan
from simulator.core import Decision as CoreDecision
from simulator.core import Intent, IntentLeg, Keys, RunLimits, RunState, SimConfig
from simulator.core.checks import reason_of
from simulator.models import SimulatorRun

# A threshold left unset on the profile is replaced by a value its check always refuses, and
# that check's detail is then rewritten to say what is missing (see `explain_missing`).
REFUSING_LIMITS = {
    "max_leg_usd": Decimal(0),
    "min_net_edge_cents": Decimal(100),
    "daily_cap_usd": Decimal(0),
}
CHECK_OF_THRESHOLD = {
    "max_leg_usd": "has_orders",
    "min_net_edge_cents": "net_edge",
    "daily_cap_usd": "daily_cap",
}
DIRECTION_SIDES = {  # direction -> (kalshi side, polymarket side)
    "kalshi_yes_poly_no": (YES, NO),
    "poly_yes_kalshi_no": (NO, YES),
}
PRICE_PLACES = Decimal("0.0001")


# --- building the pure core's inputs --------------------------------------------------------------


def _decimal(raw: Any) -> Decimal:
    try:
        value = Decimal(str(raw))
    except (InvalidOperation, ValueError):
        return Decimal(0)
    return value if value.is_finite() else Decimal(0)


def core_intent(intent: ExecutionIntent) -> Intent:
    """The core's view of an intent row. A malformed leg keeps zeros, which has_orders refuses."""
    legs = tuple(
        IntentLeg(
            venue=str(leg.get("venue", "")),
            instrument_id=str(leg.get("instrument_id", "") or ""),
            side=str(leg.get("side", "")),
            limit_price=_decimal(leg.get("limit_price")),
            size=_decimal(leg.get("size")),
        )
        for leg in (intent.legs or [])
        if isinstance(leg, dict)
    )
    return Intent(
        id=intent.pk,
        opportunity_key=intent.opportunity_key,
        direction=intent.direction,
        net_edge_cents=intent.net_edge_cents,
        size=intent.size,
        legs=legs,
    )


def span_intent(span: SuccessSpan, user_id: int) -> Intent:
    """What a span start is judged on for one user's run.

    The user's own latest intent of that span when ingest emitted one (its prices, size and the
    edge at the user's size). Otherwise a synthetic one contract from the span's pair and
    direction, at the span's peak edge so far: the span records edges, not prices, so each leg is
    priced at half of (1 - edge), the cheapest pair that gives that edge before fees. Its
    net_edge, instrument_ids and exchange_keys checks are exact; balance and daily cap are judged
    on that one-contract estimate."""
    own = ExecutionIntent.objects.filter(span=span, user_id=user_id).order_by("-signal_at", "-id").first()
    if own is not None:
        return core_intent(own)
    pair: MarketPair = span.pair
    kalshi_side, poly_side = DIRECTION_SIDES.get(span.direction, (YES, NO))
    poly_token = pair.poly_yes_token if poly_side == YES else pair.poly_no_token
    leg_price = ((1 - span.peak_edge_cents / 100) / 2).quantize(PRICE_PLACES, rounding=ROUND_FLOOR)
    one = Decimal(1)
    return Intent(
        id=f"span-{span.pk}",
        opportunity_key=span.opportunity_key,
        direction=span.direction,
        net_edge_cents=span.peak_edge_cents,
        size=one,
        legs=(
            IntentLeg(KALSHI, pair.kalshi_ticker, kalshi_side, leg_price, one),
            IntentLeg(POLYMARKET, poly_token, poly_side, leg_price, one),
        ),
    )


def fee_schedules(pair: MarketPair) -> dict[tuple[str, str], FeeSchedule]:
    kalshi = FeeSchedule(venue=KALSHI, rate=pair.kalshi_fee_rate)
    poly = FeeSchedule(venue=POLYMARKET, rate=pair.poly_fee_rate)
    return {
        (KALSHI, pair.kalshi_ticker): kalshi,
        (POLYMARKET, pair.poly_yes_token): poly,
        (POLYMARKET, pair.poly_no_token): poly,
    }


def keys_of(saved_exchanges: Collection[str]) -> Keys:
    """Which venues the user has saved keys for (the names of their secrets)."""
    return Keys(kalshi=KALSHI in saved_exchanges, polymarket=POLYMARKET in saved_exchanges)


def _missing_thresholds(run: SimulatorRun) -> list[str]:
    return [name for name in REFUSING_LIMITS if getattr(run, name) is None]


def run_limits(run: SimulatorRun) -> RunLimits:
    values = {name: getattr(run, name) for name in REFUSING_LIMITS}
    return RunLimits(
        **{name: value if value is not None else REFUSING_LIMITS[name] for name, value in values.items()}
    )


def explain_missing(decision: CoreDecision, run: SimulatorRun) -> CoreDecision:
    """Reword the refusal of a check whose threshold was unset when the run started."""
    missing = {CHECK_OF_THRESHOLD[name]: name for name in _missing_thresholds(run)}
    failing = next((check for check in decision.checks if not check.ok), None)
    if failing is None or failing.name not in missing:
        return decision
    detail = f"{missing[failing.name]} was not set on your profile when this run started"
    checks = tuple(replace(check, detail=detail) if check is failing else check for check in decision.checks)
    return replace(decision, checks=checks, reason=reason_of(checks))


_sim_configs: dict[bytes, SimConfig] = {}


def sim_config(run: SimulatorRun) -> SimConfig:
    """The run's fill and timing model. Built once per distinct configuration (they are few and
    immutable): building one costs more than a tenth of the pure core's whole decision."""
    key = orjson.dumps(run.sim_config, option=orjson.OPT_SORT_KEYS)
    config = _sim_configs.get(key)
    if config is None:
        if len(_sim_configs) >= 1_000:
            _sim_configs.clear()
        config = _sim_configs[key] = SimConfig.from_json(run.sim_config)
    return config


def utc_day(now: datetime) -> date:
    return now.astimezone(UTC).date()


def run_state(run: SimulatorRun, now: datetime) -> RunState:
    """Balance and today's traded total; the daily total starts again at each UTC midnight."""
    traded_today = run.traded_today_usd if run.traded_day == utc_day(now) else Decimal(0)
    return RunState(balance_usd=run.balance_usd, traded_today_usd=traded_today)


def draw_key(intent: ExecutionIntent) -> str:
    """What a run's random draws for an intent are seeded by, with the run's seed: the intent's
    content (its pair, direction and the time its books were seen), not its row id, so the same
    recording replayed again draws the same latencies and competition."""
    signal_ms = int(intent.signal_at.timestamp() * 1000)
    return f"{intent.opportunity_key}:{intent.direction}:{signal_ms}"
