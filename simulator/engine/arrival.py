"""The arrival phase: each order of a trade meets its venue's book at its arrival time, exactly once.

A step is one order reaching its venue: `leg:<i>` (a leg's order) or `unwind:<i>` (the sale of a
leg's unhedged excess). `arrive(trade_id, step)` runs one step, in three round trips to the
database (`simulator.engine.arrival_store`):

1. Without any lock or transaction, the trade's orders are read (one round trip), and the book
   the order meets is asked of `books` (a read-only venue call made at the arrival time, or a
   recording's book at that time): a slow venue never holds a lock.
2. One transaction: BEGIN with the run's row and the trade's row locked and read (one round trip;
   the run holds the money and the liquidity ledger, and it orders every worker of the run); a
   step already done is returned as it is (a redelivered task, a duplicate sent by the sweep).
3. The pure core fills the order (`simulator.core.execution`), sends a waiting leg sized to the
   first fill, hedges once every leg is in (unwind or carry), and when nothing is left on its way
   settles the trade's figures and releases the held money less what the orders cost. The
   trade, the run's money and (for a missed trade) the decision's reason are written in one
   statement with the COMMIT (one round trip).
4. After commit: the trade's next steps are returned to the caller to schedule, and a completed
   trade is broadcast.

A run stopped while orders are in flight lets them complete, as a venue would.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial

from django.db import transaction

from config import telemetry
from exchanges.books import Book
from exchanges.fees import FeeSchedule
from simulator.core import SimConfig
from simulator.core.execution import (
    MISSED,
    SENT,
    WAITING,
    LegOrder,
    fill_at_arrival,
    hedge,
    is_complete,
    legs_from_json,
    pending_steps,
    send_waiting,
    settle_arrival,
    unwind_at_arrival,
)
from simulator.core.fills import fill_pct
from simulator.core.liquidity import LiquidityLedger
from simulator.engine.arrival_store import lock_run_and_trade, trade_orders, write_arrival
from simulator.engine.broadcast import broadcast_decision
from simulator.engine.inputs import draw_key, fee_schedules, sim_config, utc_day
from simulator.engine.validation import arrival_book
from simulator.models import Decision, SimulatorRun, SimulatorTrade

logger = logging.getLogger(__name__)

# (user id, the order, when it arrives) -> (the venue's book then, or None and why not)
ArrivalBooks = Callable[[int, LegOrder, datetime], tuple[Book | None, str]]
Step = tuple[int, str, datetime]  # (trade id, step, when it is due)

MONEY_FIELDS = [
    "balance_usd",
    "reserved_usd",
    "traded_today_usd",
    "expected_pnl_usd",
    "unhedged_exposure_usd",
    "unhedged_contracts",
    "liquidity_state",
]
TRADE_FIELDS = [
    "legs",
    "arrival_outcome",
    "matched_size",
    "fill_pct",
    "cost_usd",
    "fees_usd",
    "expected_pnl_usd",
    "net_edge_cents",
    "realised_edge_cents",
    "slippage_cents",
    "unwind_cost_usd",
    "carried_mark_usd",
    "executed_at",
    "settled_at",
]


def venue_books(user_id: int, order: LegOrder, at: datetime) -> tuple[Book | None, str]:
    """The live path (and the demo's, whose venue is the exchange double fed by the replay): a
    read-only book call made now, at the arrival time, with the user's keys. Its lateness goes to
    /metrics (a replay's books are on the recording's clock: not observed)."""
    telemetry.observe_arrival_lateness(at, datetime.now(UTC))
    result = arrival_book(user_id, order.venue, order.instrument_id, order.side)
    if not result.ok:
        return None, f"no book at arrival: {result.kind.replace('_', ' ')}: {result.detail}"
    return result.value, ""


@dataclass(frozen=True, slots=True)
class Arrived:
    """What `arrive` did: the trade as committed, whether this call did the step, and the steps
    that became due because of it (to schedule)."""

    trade: SimulatorTrade
    done_now: bool
    next_steps: list[Step]


def steps_of(trade: SimulatorTrade) -> list[Step]:
    """The trade's orders still on their way, as steps to schedule."""
    return [(trade.pk, step, at) for step, at in pending_steps(legs_from_json(trade.legs))]


def _parse(step: str) -> tuple[str, int]:
    kind, _, index = step.partition(":")
    if kind not in ("leg", "unwind") or not index.isdigit():
        raise ValueError(f"unknown arrival step {step!r}")
    return kind, int(index)


def _due(order: LegOrder, kind: str) -> datetime | None:
    """When this step arrives, or None when it is not on its way (done, or not sent)."""
    if kind == "leg":
        return order.arrived_at if order.state == SENT else None
    if order.unwind is None or order.unwind.arrived:
        return None
    return order.unwind.arrived_at


def arrive(*, trade_id: int, step: str, books: ArrivalBooks | None = None) -> Arrived | None:
    """Run one arrival step of a trade once. None when the trade does not exist."""
    kind, index = _parse(step)
    books = books or venue_books
    seen = trade_orders(trade_id)
    if seen is None:
        return None
    user_id, legs = seen
    orders = legs_from_json(legs)
    if index >= len(orders) or _due(orders[index], kind) is None:
        return Arrived(trade=SimulatorTrade.objects.get(pk=trade_id), done_now=False, next_steps=[])
    order = orders[index]
    book, unavailable = books(user_id, order, _due(order, kind))  # type: ignore[arg-type]

    with transaction.atomic():
        run, trade = lock_run_and_trade(trade_id)
        orders = legs_from_json(trade.legs)
        before = {name for name, _ in pending_steps(orders)}
        if _due(orders[index], kind) is None:  # done by another delivery while we read the book
            return Arrived(trade=trade, done_now=False, next_steps=[])
        config = sim_config(run)
        schedule = fee_schedules(trade.intent.pair)[(order.venue, order.instrument_id)]
        ledger = LiquidityLedger.from_json(run.liquidity_state)
        if kind == "leg":
            orders = _leg_arrives(orders, index, book, unavailable, run, trade, ledger, config, schedule)
        else:
            bids = book.bids if book is not None else None
            orders = _replace(
                orders,
                index,
                unwind_at_arrival(orders[index], bids=bids, schedule=schedule, unavailable=unavailable),
            )
        trade.legs = [leg.as_json() for leg in orders]
        run.liquidity_state = ledger.to_json()
        if is_complete(orders):
            missed = _complete(trade, run, orders)
            write_arrival(trade, TRADE_FIELDS, run, MONEY_FIELDS, missed=missed)
            # The page hears of a trade twice: queued at decision, and here with its fills. The
            # steps in between are milliseconds apart (the API shows them).
            transaction.on_commit(partial(broadcast_decision, trade, run))
        else:
            write_arrival(trade, ["legs"], run, ["liquidity_state"])
    new_steps = [(trade.pk, name, at) for name, at in pending_steps(orders) if name not in before]
    logger.info(
        "event=arrived trade_id=%s step=%s outcome=%s", trade.pk, step, trade.arrival_outcome or "in_flight"
    )
    return Arrived(trade=trade, done_now=True, next_steps=new_steps)


def _replace(orders: Sequence[LegOrder], index: int, order: LegOrder) -> tuple[LegOrder, ...]:
    return tuple(order if i == index else other for i, other in enumerate(orders))


def _leg_arrives(
    orders: Sequence[LegOrder],
    index: int,
    book: Book | None,
    unavailable: str,
    run: SimulatorRun,
    trade: SimulatorTrade,
    ledger: LiquidityLedger,
    config: SimConfig,
    schedule: FeeSchedule,
) -> tuple[LegOrder, ...]:
    """The leg's order fills at its arrival book (what this run took from that snapshot and a
    seeded competitor share gone first); a waiting leg goes out; all in: hedge."""
    competition = config.execution.competition
    marginal = competition.is_marginal(trade.signal_edge_cents or 0, run.min_net_edge_cents or 0)
    order = orders[index]
    filled = fill_at_arrival(
        order,
        arrival_asks=book.asks if book is not None else None,
        best_bid=book.bids[0].price if book is not None and book.bids else None,
        book_ts_ms=book.ts_ms if book is not None else None,
        taken_by_run=ledger.taken(book) if book is not None else {},
        shares=competition.shares(marginal),
        # Seeded per (run, intent, leg): the same run replayed draws the same competition.
        rng=random.Random(f"{run.seed}:{draw_key(trade.intent)}:arrival:{index}"),
        schedule=schedule,
        unavailable=unavailable,
    )
    if book is not None and filled.fills:
        ledger.consume(book, filled.fills)
    orders = send_waiting(_replace(orders, index, filled))
    if all(o.state not in (WAITING, SENT) for o in orders):
        orders = hedge(orders, policy=config.execution.unhedged)
    return orders


def _complete(trade: SimulatorTrade, run: SimulatorRun, orders: Sequence[LegOrder]) -> tuple[str, str] | None:
    """The trade's figures from its orders; the held money released less what they cost.
    Returns the decision's new (reason, reason_code) when no order filled, else None."""
    result = settle_arrival(
        orders,
        decided_size=trade.order_size,
        signal_edge_cents=trade.signal_edge_cents
        if trade.signal_edge_cents is not None
        else trade.net_edge_cents,
        decided_at=trade.decided_at,
    )
    trade.arrival_outcome = result.outcome
    trade.matched_size = result.matched_size
    trade.fill_pct = fill_pct(result.matched_size, trade.requested_size)
    trade.cost_usd = result.cost_usd
    trade.fees_usd = result.fees_usd
    trade.expected_pnl_usd = result.expected_pnl_usd
    trade.net_edge_cents = result.realised_edge_cents if result.realised_edge_cents is not None else 0
    trade.realised_edge_cents = result.realised_edge_cents
    trade.slippage_cents = result.slippage_cents
    trade.unwind_cost_usd = result.unwind_cost_usd
    trade.carried_mark_usd = result.carried_mark_usd
    delay = trade.settled_at - trade.executed_at
    trade.executed_at = result.executed_at
    trade.settled_at = result.executed_at + delay

    unused = trade.reserved_usd - result.cost_usd
    run.reserved_usd -= trade.reserved_usd
    run.balance_usd += unused
    if run.traded_day == utc_day(trade.decided_at):
        run.traded_today_usd -= unused
    run.expected_pnl_usd += result.expected_pnl_usd
    run.unhedged_exposure_usd += result.carried_mark_usd
    run.unhedged_contracts += sum((order.carried_size for order in orders), Decimal(0))
    if result.outcome == MISSED:
        return f"arrival: {result.reason}"[:300], "arrival"
    return None


def arrive_in_order(steps: Sequence[Step], books: ArrivalBooks | None = None) -> int:
    """Run `steps` and every step they lead to, earliest first, here and now (the inline mode,
    tools and tests). Returns how many steps were done."""
    queue = sorted(steps, key=lambda item: item[2])
    done = 0
    while queue:
        trade_id, step, _ = queue.pop(0)
        arrived = arrive(trade_id=trade_id, step=step, books=books)
        if arrived is not None and arrived.done_now:
            done += 1
            queue = sorted([*queue, *arrived.next_steps], key=lambda item: item[2])
    return done


def in_flight_steps(decision: Decision) -> list[Step]:
    """The steps of a decision's trade still on their way ([] when it did not trade)."""
    if decision.outcome != Decision.TRADED:
        return []
    if Decision.trade.is_cached(decision):  # just decided here: the trade as written, no query
        return steps_of(decision.trade)
    trade = SimulatorTrade.objects.filter(decision_id=decision.pk, arrival_outcome="").only("legs").first()
    return steps_of(trade) if trade is not None else []
