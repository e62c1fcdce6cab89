"""The pipeline: `decide_intent` and `decide_span_start`, each (run, intent) or (run, span start)
decided exactly once. Each step is a module of this package, called in this order:

1. Load and lock (`load`): one transaction, its first round trip reading the run (its row locked),
   whether (run, intent) is decided already, the intent and the user's secret stamps. A decided
   one is returned as it is (a redelivered task, or a concurrent worker that won the lock first,
   stops here); a run whose time is up ends here (`expiry`).
2. Inputs (`inputs`): the pure core's view of the run's limits and state, the intent, the keys,
   the pair's fees.
3. The core decision (`simulator.core.decide`, pure): the four cheap checks; when they pass, the
   exchange validation (`validation`) is needed: answered from the validator's short cache when
   every answer is there; otherwise the transaction is left (nothing written, the lock released),
   the venues are asked with no lock held (a slow venue never stalls the run's other workers), and
   step 1 starts again with the answers in hand. The core decides on the balance, daily total and
   liquidity ledger as they are under the lock, so a concurrent worker for the same run, waiting
   for the lock, can overdraw neither the balance nor the daily cap.
4. Rows (`rows`): the decision row, the trade row, the run's money.
5. Write (`write`): all three in one statement, with the COMMIT.
6. Broadcast (`broadcast`), after commit: `simulator:trade` and `simulator:run` to the user's
   websocket group, handed to the broadcast thread and not waited for.

With the validation cached, the hot path is two round trips on PostgreSQL: BEGIN with the locked
read, then one statement writing decision, trade and the run's money with COMMIT (see
`simulator.engine.wire`). The statements are prepared once per connection; no savepoint per
decision; no secret read or decrypted while its stamp is unchanged."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime
from functools import partial

from django.db import IntegrityError, transaction
from django.utils import timezone

from ingest.models import ExecutionIntent, SuccessSpan
from simulator.core import (
    SKIPPED,
    TRADED,
    ExchangeValidation,
    Intent,
    Keys,
    LiquidityLedger,
    decide,
    decide_span,
)
from simulator.engine.broadcast import broadcast_decision
from simulator.engine.expiry import expire_run_if_due
from simulator.engine.inputs import (
    core_intent,
    draw_key,
    explain_missing,
    fee_schedules,
    keys_of,
    run_limits,
    run_state,
    sim_config,
    span_intent,
)
from simulator.engine.load import existing_decision, run_and_decided, run_intent_and_stamps
from simulator.engine.rows import decision_row, reason_code, reserve_for_trade, trade_row
from simulator.engine.validation import (
    CachedValidator,
    Validator,
    secret_stamps,
    secrets_as_of,
    validate_intent,
    validate_intent_from_cache,
)
from simulator.engine.write import write_decision
from simulator.models import Decision, SimulatorRun

logger = logging.getLogger(__name__)


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
                if not getattr(ask_venues, "needs_keys", True):  # a recording: no venue to sign for
                    keys = Keys(kalshi=True, polymarket=True)
                decision = _decide_locked(run, intent_row, intent, keys, validate_locked, now)
        except _AskTheVenues:
            # Never call a venue with the run locked: a slow one would stall every worker of the run.
            with secrets_as_of(run.user_id, stamps):
                validation = ask_venues(run.user_id, intent.legs, now)
            continue
        except IntegrityError:
            # The unique (run, intent) constraint: only a writer that skipped the run's lock could
            # get here first. Nothing of this attempt is kept (no savepoint needed per decision).
            return existing_decision(run_id, intent_id=intent_id)
        break
    logger.info(
        "event=decided run_id=%s intent_id=%s outcome=%s reason_code=%s",
        run_id,
        intent_id,
        decision.outcome,
        decision.reason_code,
    )
    return decision


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
        rng=random.Random(f"{run.seed}:{draw_key(intent_row)}"),
        now=now,
        ledger=ledger,
        config=sim_config(run),
    )
    result = explain_missing(result, run)
    decision = decision_row(
        run,
        result,
        intent=intent_row,
        reason_code=reason_code(result),
        edge_cents=intent_row.net_edge_cents,
        opportunity_key=intent_row.opportunity_key,
        now=now,
    )
    if result.outcome == TRADED:
        trade = trade_row(run, intent_row, decision, result, now)
        write_decision(decision, trade=trade, run=run, run_fields=reserve_for_trade(run, trade, now))
        transaction.on_commit(partial(broadcast_decision, trade, run))
    else:
        run.decision_count += 1
        write_decision(decision, run=run, run_fields=["decision_count"])
    return decision


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
            decision = decision_row(
                run,
                result,
                span=span,
                reason_code=reason_code(result) if result.outcome == SKIPPED else "",
                edge_cents=intent.net_edge_cents,
                opportunity_key=span.opportunity_key,
                now=now,
            )
            run.decision_count += 1
            write_decision(decision, run=run, run_fields=["decision_count"])
    except IntegrityError:  # as in decide_intent
        return existing_decision(run_id, span_id=span_id)
    return decision
