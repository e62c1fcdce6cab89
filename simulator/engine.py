"""The engine: one (run, intent) or (run, span start) decided exactly once.

Order of work for an intent, and why:
1. A decision row for (run, intent) already there: return it (a redelivered task stops here).
2. The four cheap checks need nothing that changes while the run is running (the run's
   threshold snapshot, the intent, the user's saved keys). When they pass, the exchange is asked
   *before* the run's row lock is taken, so a slow venue never holds the lock.
3. One transaction with the run row locked (`select_for_update`): the pure core decides on the
   balance, daily total and liquidity ledger as they are now, and the decision row, the trade row
   and the run's money are written together. A concurrent worker for the same run waits here,
   so neither the balance nor the daily cap can be overdrawn by two decisions at once.
4. After commit: `simulator:trade` and `simulator:run` to the user's websocket group.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.selectors import exchanges_with_secrets
from exchanges.books import KALSHI, NO, POLYMARKET, YES
from exchanges.fees import FeeSchedule
from ingest.models import ExecutionIntent, MarketPair, SuccessSpan
from simulator.broadcast import broadcast_run, broadcast_trade
from simulator.core import (
    SKIPPED,
    TRADED,
    Check,
    ExchangeValidation,
    Intent,
    IntentLeg,
    Keys,
    LiquidityLedger,
    RunLimits,
    RunState,
    SimConfig,
    decide,
    decide_span,
)
from simulator.core import Decision as CoreDecision
from simulator.core.checks import (
    check_exchange_keys,
    check_has_orders,
    check_instrument_ids,
    check_net_edge,
    reason_of,
)
from simulator.models import Decision, SimulatorRun, SimulatorTrade
from simulator.services import expire_run_if_due
from simulator.validation import Validator, validate_intent

logger = logging.getLogger(__name__)

# A threshold left unset on the profile is replaced by a value its check always refuses, and
# that check's detail is then rewritten to say what is missing (see `_explain_missing`).
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


def user_keys(user_id: int) -> Keys:
    saved = exchanges_with_secrets(user_id=user_id)
    return Keys(kalshi=KALSHI in saved, polymarket=POLYMARKET in saved)


def _missing_thresholds(run: SimulatorRun) -> list[str]:
    return [name for name in REFUSING_LIMITS if getattr(run, name) is None]


def run_limits(run: SimulatorRun) -> RunLimits:
    values = {name: getattr(run, name) for name in REFUSING_LIMITS}
    return RunLimits(
        **{name: value if value is not None else REFUSING_LIMITS[name] for name, value in values.items()}
    )


def _explain_missing(decision: CoreDecision, run: SimulatorRun) -> CoreDecision:
    """Reword the refusal of a check whose threshold was unset when the run started."""
    missing = {CHECK_OF_THRESHOLD[name]: name for name in _missing_thresholds(run)}
    failing = next((check for check in decision.checks if not check.ok), None)
    if failing is None or failing.name not in missing:
        return decision
    detail = f"{missing[failing.name]} was not set on your profile when this run started"
    checks = tuple(replace(check, detail=detail) if check is failing else check for check in decision.checks)
    return replace(decision, checks=checks, reason=reason_of(checks))


def utc_day(now: datetime) -> date:
    return now.astimezone(UTC).date()


def run_state(run: SimulatorRun, now: datetime) -> RunState:
    """Balance and today's traded total; the daily total starts again at each UTC midnight."""
    traded_today = run.traded_today_usd if run.traded_day == utc_day(now) else Decimal(0)
    return RunState(balance_usd=run.balance_usd, traded_today_usd=traded_today)


def needs_exchange(intent: Intent, limits: RunLimits, keys: Keys) -> bool:
    """Whether the four cheap checks pass, i.e. whether `decide` will ask the exchange."""
    return (
        check_has_orders(intent, limits).ok
        and check_net_edge(intent, limits).ok
        and check_instrument_ids(intent).ok
        and check_exchange_keys(intent, keys).ok
    )


# --- persistence ------------------------------------------------------------------------------------


def _checks_json(checks: Sequence[Check]) -> list[dict[str, Any]]:
    return [check.as_json() for check in checks]


def _reason_code(decision: CoreDecision) -> str:
    failing = next((check for check in decision.checks if not check.ok), None)
    return failing.name if failing is not None else ""


def _save_decision(**fields: Any) -> Decision | None:
    """Insert under a savepoint; None when the unique (run, intent|span) constraint says another
    delivery already decided it."""
    try:
        with transaction.atomic():
            return Decision.objects.create(**fields)
    except IntegrityError:
        return None


def _existing(run_id: int, *, intent_id: int | None = None, span_id: int | None = None) -> Decision | None:
    if intent_id is not None:
        return Decision.objects.filter(run_id=run_id, intent_id=intent_id).first()
    return Decision.objects.filter(run_id=run_id, span_id=span_id).first()


def _persist_trade(
    run: SimulatorRun,
    intent_row: ExecutionIntent,
    decision_row: Decision,
    result: CoreDecision,
    now: datetime,
) -> SimulatorTrade:
    draft = result.trade
    assert draft is not None
    return SimulatorTrade.objects.create(
        run=run,
        intent=intent_row,
        decision=decision_row,
        user_id=run.user_id,
        opportunity_key=intent_row.opportunity_key,
        direction=intent_row.direction,
        net_edge_cents=draft.net_edge_cents
        if draft.net_edge_cents is not None
        else intent_row.net_edge_cents,
        requested_size=draft.requested_size,
        matched_size=draft.matched_size,
        fill_pct=draft.fill_pct,
        cost_usd=draft.cost_usd,
        fees_usd=draft.fees_usd,
        expected_pnl_usd=draft.expected_pnl_usd,
        legs=[leg.as_json() for leg in draft.legs],
        checks=_checks_json(result.checks),
        validation=result.validation.as_json() if result.validation is not None else {},
        decided_at=now,
        executed_at=draft.executed_at,
        settled_at=draft.settled_at,
        settlement_delay_s=draft.settlement_delay_s,
    )


# --- the two decisions ------------------------------------------------------------------------------


def decide_intent(
    *, run_id: int, intent_id: int, now: datetime | None = None, validator: Validator | None = None
) -> Decision | None:
    """Decide (run, intent) once. Returns the decision (new or already there), or None when the
    run or intent does not exist, belongs to another user, or the run is no longer running."""
    existing = _existing(run_id, intent_id=intent_id)
    if existing is not None:
        return existing
    intent_row = ExecutionIntent.objects.select_related("pair").filter(pk=intent_id).first()
    run = SimulatorRun.objects.filter(pk=run_id).first()
    if intent_row is None or run is None or run.user_id != intent_row.user_id:
        logger.warning("event=decide_skipped run_id=%s intent_id=%s why=not_found", run_id, intent_id)
        return None
    if run.status != SimulatorRun.RUNNING:
        return None
    now = now or timezone.now()
    intent = core_intent(intent_row)
    keys = user_keys(run.user_id)
    validation: ExchangeValidation | None = None
    if needs_exchange(intent, run_limits(run), keys):
        validation = (validator or validate_intent)(run.user_id, intent.legs, now)

    def prefetched() -> ExchangeValidation:
        assert validation is not None, "the cheap checks passed under the lock but not before it"
        return validation

    with transaction.atomic():
        run = SimulatorRun.objects.select_for_update().get(pk=run_id)
        existing = _existing(run_id, intent_id=intent_id)  # a racing delivery won while we waited
        if existing is not None:
            return existing
        if expire_run_if_due(run, now=now) or run.status != SimulatorRun.RUNNING:
            return None
        ledger = LiquidityLedger.from_json(run.liquidity_state)
        result = decide(
            intent=intent,
            limits=run_limits(run),
            state=run_state(run, now),
            keys=keys,
            validate=prefetched,
            fee_schedules=fee_schedules(intent_row.pair),
            rng=random.Random(f"{run.seed}:{intent_row.pk}"),
            now=now,
            ledger=ledger,
            config=SimConfig.from_json(run.sim_config),
        )
        result = _explain_missing(result, run)
        decision_row = _save_decision(
            run=run,
            intent=intent_row,
            decision_source=Decision.INTENT,
            outcome=result.outcome,
            reason=result.reason[:300],
            reason_code=_reason_code(result),
            checks=_checks_json(result.checks),
            edge_cents=intent_row.net_edge_cents,
            opportunity_key=intent_row.opportunity_key,
            created_at=now,
        )
        if decision_row is None:
            return _existing(run_id, intent_id=intent_id)
        trade = None
        if result.outcome == TRADED:
            trade = _persist_trade(run, intent_row, decision_row, result, now)
            _book_trade(run, trade, ledger, now)
        else:
            run.decision_count += 1
            run.save(update_fields=["decision_count"])
        if trade is not None:
            transaction.on_commit(partial(_announce_trade, trade, run))
    logger.info(
        "event=decided run_id=%s intent_id=%s outcome=%s reason_code=%s",
        run_id,
        intent_id,
        decision_row.outcome,
        decision_row.reason_code,
    )
    return decision_row


def _book_trade(run: SimulatorRun, trade: SimulatorTrade, ledger: LiquidityLedger, now: datetime) -> None:
    today = run_state(run, now)
    run.balance_usd -= trade.cost_usd
    run.expected_pnl_usd += trade.expected_pnl_usd
    run.trade_count += 1
    run.decision_count += 1
    run.traded_day = utc_day(now)
    run.traded_today_usd = today.traded_today_usd + trade.cost_usd
    run.liquidity_state = ledger.to_json()
    run.save(
        update_fields=[
            "balance_usd",
            "expected_pnl_usd",
            "trade_count",
            "decision_count",
            "traded_day",
            "traded_today_usd",
            "liquidity_state",
        ]
    )


def _announce_trade(trade: SimulatorTrade, run: SimulatorRun) -> None:
    broadcast_trade(trade)
    broadcast_run(run)


def decide_span_start(*, run_id: int, span_id: int, now: datetime | None = None) -> Decision | None:
    """Would this run have been eligible at the span's start? One decision per (run, span),
    outcome eligible or skipped, never a trade, never an exchange call."""
    existing = _existing(run_id, span_id=span_id)
    if existing is not None:
        return existing
    span = SuccessSpan.objects.select_related("pair").filter(pk=span_id).first()
    run = SimulatorRun.objects.filter(pk=run_id).first()
    if span is None or run is None or run.status != SimulatorRun.RUNNING:
        return None
    now = now or timezone.now()
    intent = span_intent(span, run.user_id)
    keys = user_keys(run.user_id)
    with transaction.atomic():
        run = SimulatorRun.objects.select_for_update().get(pk=run_id)
        existing = _existing(run_id, span_id=span_id)
        if existing is not None:
            return existing
        if expire_run_if_due(run, now=now) or run.status != SimulatorRun.RUNNING:
            return None
        result = decide_span(intent, run_limits(run), run_state(run, now), keys, fee_schedules(span.pair))
        result = _explain_missing(result, run)
        decision_row = _save_decision(
            run=run,
            span=span,
            decision_source=Decision.SUCCESS_SPAN,
            outcome=result.outcome,
            reason=result.reason[:300],
            reason_code=_reason_code(result) if result.outcome == SKIPPED else "",
            checks=_checks_json(result.checks),
            edge_cents=intent.net_edge_cents,
            opportunity_key=span.opportunity_key,
            created_at=now,
        )
        if decision_row is None:
            return _existing(run_id, span_id=span_id)
        run.decision_count += 1
        run.save(update_fields=["decision_count"])
    return decision_row
