"""The engine: one (run, intent) or (run, span start) decided exactly once.

Order of work for an intent, and why:
1. One transaction, its first round trip reading the run (its row locked: `select_for_update`),
   whether (run, intent) is decided already, the intent and the user's secret stamps (see
   `simulator.validation.secret_stamps`). A decided one is returned as it is (a redelivered task,
   or a concurrent worker that won the lock first, stops here).
2. The four cheap checks. When they pass, the exchange validation is needed: answered from the
   validator's short cache when every answer is there; otherwise the transaction is left
   (nothing written, the lock released), the venues are asked with no lock held (a slow venue
   never stalls the run's other workers), and step 1 starts again with the answers in hand.
3. Under the lock, the pure core decides on the balance, daily total and liquidity ledger as they
   are now, and the decision row, the trade row and the run's money are written together. A
   concurrent worker for the same run waits for the lock, so neither the balance nor the daily
   cap can be overdrawn by two decisions at once.
4. After commit: `simulator:trade` and `simulator:run` to the user's websocket group, handed
   to the broadcast thread and not waited for (see `simulator.broadcast`).

With the validation cached, the hot path is two round trips on PostgreSQL: BEGIN with the locked
read, then one statement writing decision, trade and the run's money with COMMIT (see
`simulator.engine_wire`). The statements are prepared once per connection; no savepoint per
decision; no secret read or decrypted while its stamp is unchanged."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from ingest.models import ExecutionIntent, SuccessSpan
from simulator.broadcast import broadcast_decision
from simulator.core import (
    SKIPPED,
    TRADED,
    Check,
    ExchangeValidation,
    Intent,
    Keys,
    LiquidityLedger,
    decide,
    decide_span,
)
from simulator.core import Decision as CoreDecision
from simulator.engine_inputs import (
    core_intent,
    explain_missing,
    fee_schedules,
    keys_of,
    run_limits,
    run_state,
    sim_config,
    span_intent,
    utc_day,
)
from simulator.engine_sql import (
    cache_related,
    new_row,
    run_and_decided,
    run_intent_and_stamps,
    write_decision,
)
from simulator.models import Decision, SimulatorRun, SimulatorTrade
from simulator.services import expire_run_if_due
from simulator.validation import (
    CachedValidator,
    Validator,
    secret_stamps,
    secrets_as_of,
    validate_intent,
    validate_intent_from_cache,
)

logger = logging.getLogger(__name__)

# --- persistence ------------------------------------------------------------------------------------


def _checks_json(checks: Sequence[Check]) -> list[dict[str, Any]]:
    return [check.as_json() for check in checks]


def _reason_code(decision: CoreDecision) -> str:
    failing = next((check for check in decision.checks if not check.ok), None)
    return failing.name if failing is not None else ""


def _existing(run_id: int, *, intent_id: int | None = None, span_id: int | None = None) -> Decision | None:
    if intent_id is not None:
        return Decision.objects.filter(run_id=run_id, intent_id=intent_id).first()
    return Decision.objects.filter(run_id=run_id, span_id=span_id).first()


def _trade_row(
    run: SimulatorRun,
    intent_row: ExecutionIntent,
    decision_row: Decision,
    result: CoreDecision,
    now: datetime,
) -> SimulatorTrade:
    """The trade row of a decision that traded, not yet saved (see `write_decision`)."""
    draft = result.trade
    assert draft is not None
    trade = new_row(
        SimulatorTrade,
        run_id=run.pk,
        intent_id=intent_row.pk,
        decision_id=None,  # the decision's, once written
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
        checks=decision_row.checks,
        validation=result.validation.as_json() if result.validation is not None else {},
        decided_at=now,
        executed_at=draft.executed_at,
        settled_at=draft.settled_at,
        settlement_delay_s=draft.settlement_delay_s,
        payout_usd=None,  # until the pair's markets resolve
        resolved_at=None,
    )
    cache_related(trade, run=run, intent=intent_row)
    return trade


def _decision_row(
    run: SimulatorRun,
    result: CoreDecision,
    *,
    intent: ExecutionIntent | None = None,
    span: SuccessSpan | None = None,
    reason_code: str,
    edge_cents: Decimal,
    opportunity_key: str,
    now: datetime,
) -> Decision:
    """The decision row, not yet saved (see `write_decision`)."""
    decision = new_row(
        Decision,
        run_id=run.pk,
        intent_id=intent.pk if intent is not None else None,
        span_id=span.pk if span is not None else None,
        decision_source=Decision.INTENT if intent is not None else Decision.SUCCESS_SPAN,
        outcome=result.outcome,
        reason=result.reason[:300],
        reason_code=reason_code,
        checks=_checks_json(result.checks),
        edge_cents=edge_cents,
        opportunity_key=opportunity_key,
        created_at=now,
    )
    cache_related(decision, run=run, **({"intent": intent} if intent is not None else {"span": span}))
    return decision


# --- the two decisions ------------------------------------------------------------------------------


class _AskTheVenues(Exception):
    """Raised inside the locked transaction to leave it (nothing written) and call the venues."""


def _validators(validator: Validator | None) -> tuple[Validator, CachedValidator | None]:
    """(ask the venues, answer from the cache or None) for `validator`; None: the process-wide one."""
    if validator is None:
        return validate_intent, validate_intent_from_cache
    return validator, getattr(validator, "from_cache", None)


def decide_intent(
    *, run_id: int, intent_id: int, now: datetime | None = None, validator: Validator | None = None
) -> Decision | None:
    """Decide (run, intent) once. Returns the decision (new or already there), or None when the
    run or intent does not exist, belongs to another user, or the run is no longer running."""
    now = now or timezone.now()
    ask_venues, from_cache = _validators(validator)
    validation: ExchangeValidation | None = None

    def validate_locked() -> ExchangeValidation:
        """Asked by the core once the cheap checks pass, under the run's lock: the venues'
        answers from the cache, or those fetched before this attempt; else leave the lock."""
        nonlocal validation
        if validation is None and from_cache is not None:
            with secrets_as_of(run.user_id, stamps):
                validation = from_cache(run.user_id, intent.legs, now)
        if validation is None:
            raise _AskTheVenues
        return validation

    while True:  # twice at most: again with the venues' answers when they were not cached
        try:
            with transaction.atomic():
                run, intent_row, stamps = run_intent_and_stamps(run_id, intent_id, lock=True)
                if run is not None and run.decided_id is not None:  # a redelivery, or a race lost
                    return Decision.objects.get(pk=run.decided_id)
                if intent_row is None or run is None or run.user_id != intent_row.user_id:
                    logger.warning(
                        "event=decide_skipped run_id=%s intent_id=%s why=not_found", run_id, intent_id
                    )
                    return None
                if expire_run_if_due(run, now=now) or run.status != SimulatorRun.RUNNING:
                    return None
                intent, keys = core_intent(intent_row), keys_of(stamps)
                decision_row = _decide_locked(run, intent_row, intent, keys, validate_locked, now)
        except _AskTheVenues:
            # Never call a venue with the run locked: a slow one would stall every worker of the run.
            with secrets_as_of(run.user_id, stamps):
                validation = ask_venues(run.user_id, intent.legs, now)
            continue
        except IntegrityError:
            # The unique (run, intent) constraint: only a writer that skipped the run's lock could
            # get here first. Nothing of this attempt is kept (no savepoint needed per decision).
            return _existing(run_id, intent_id=intent_id)
        break
    logger.info(
        "event=decided run_id=%s intent_id=%s outcome=%s reason_code=%s",
        run_id,
        intent_id,
        decision_row.outcome,
        decision_row.reason_code,
    )
    return decision_row


def _decide_locked(
    run: SimulatorRun,
    intent_row: ExecutionIntent,
    intent: Intent,
    keys: Keys,
    validate: Callable[[], ExchangeValidation],
    now: datetime,
) -> Decision:
    """The core's decision on the locked run, written with its trade and the run's money."""
    ledger = LiquidityLedger.from_json(run.liquidity_state)
    result = decide(
        intent=intent,
        limits=run_limits(run),
        state=run_state(run, now),
        keys=keys,
        validate=validate,
        fee_schedules=fee_schedules(intent_row.pair),
        rng=random.Random(f"{run.seed}:{intent_row.pk}"),
        now=now,
        ledger=ledger,
        config=sim_config(run),
    )
    result = explain_missing(result, run)
    decision_row = _decision_row(
        run,
        result,
        intent=intent_row,
        reason_code=_reason_code(result),
        edge_cents=intent_row.net_edge_cents,
        opportunity_key=intent_row.opportunity_key,
        now=now,
    )
    if result.outcome == TRADED:
        trade = _trade_row(run, intent_row, decision_row, result, now)
        write_decision(decision_row, trade=trade, run=run, run_fields=_book_trade(run, trade, ledger, now))
        transaction.on_commit(partial(broadcast_decision, trade, run))
    else:
        run.decision_count += 1
        write_decision(decision_row, run=run, run_fields=["decision_count"])
    return decision_row


def _book_trade(
    run: SimulatorRun, trade: SimulatorTrade, ledger: LiquidityLedger, now: datetime
) -> list[str]:
    """Move the trade's money into the run (in memory); the names of the fields to save."""
    today = run_state(run, now)
    run.balance_usd -= trade.cost_usd
    run.expected_pnl_usd += trade.expected_pnl_usd
    run.trade_count += 1
    run.decision_count += 1
    run.traded_day = utc_day(now)
    run.traded_today_usd = today.traded_today_usd + trade.cost_usd
    run.liquidity_state = ledger.to_json()
    return [
        "balance_usd",
        "expected_pnl_usd",
        "trade_count",
        "decision_count",
        "traded_day",
        "traded_today_usd",
        "liquidity_state",
    ]


def decide_span_start(*, run_id: int, span_id: int, now: datetime | None = None) -> Decision | None:
    """Would this run have been eligible at the span's start? One decision per (run, span),
    outcome eligible or skipped, never a trade, never an exchange call."""
    run = run_and_decided(run_id, span_id=span_id)
    if run is not None and run.decided_id is not None:
        return Decision.objects.get(pk=run.decided_id)
    span = SuccessSpan.objects.select_related("pair").filter(pk=span_id).first()
    if span is None or run is None or run.status != SimulatorRun.RUNNING:
        return None
    now = now or timezone.now()
    intent = span_intent(span, run.user_id)
    keys = keys_of(secret_stamps(user_id=run.user_id))
    try:
        with transaction.atomic():
            run = run_and_decided(run_id, lock=True, span_id=span_id)
            if run is None:
                return None
            if run.decided_id is not None:
                return Decision.objects.get(pk=run.decided_id)
            if expire_run_if_due(run, now=now) or run.status != SimulatorRun.RUNNING:
                return None
            result = decide_span(intent, run_limits(run), run_state(run, now), keys, fee_schedules(span.pair))
            result = explain_missing(result, run)
            decision_row = _decision_row(
                run,
                result,
                span=span,
                reason_code=_reason_code(result) if result.outcome == SKIPPED else "",
                edge_cents=intent.net_edge_cents,
                opportunity_key=span.opportunity_key,
                now=now,
            )
            run.decision_count += 1
            write_decision(decision_row, run=run, run_fields=["decision_count"])
    except IntegrityError:  # as in decide_intent
        return _existing(run_id, span_id=span_id)
    return decision_row
