"""The arrival phase: each order of a trade meets its venue's book at its arrival time, exactly once.

A step is one order reaching its venue: `leg:<i>` (a leg's order) or `unwind:<i>` (the sale of a
leg's unhedged excess). `arrive_step(step)` runs one, in two round trips to the database
(`simulator.engine.arrival_store`):

1. The step carries its order (`Step`: the venue, instrument and side, the arrival time, the
   user), so the book the order meets is asked of `books` first, before anything is read and with
   no lock held (a read-only venue call made at the arrival time, or a recording's book at that
   time): a slow venue never holds a lock.
2. One transaction: BEGIN with the run's row and the trade's row locked and read (one round trip;
   the run holds the money and the liquidity ledger, and it orders every worker of the run); a
   step already done is returned as it is (a redelivered task, a duplicate sent by the sweep, a
   retry whose COMMIT reply was lost) with the trade's steps still pending, to send again.
3. The pure core fills the order (`simulator.core.execution`), sends a waiting leg sized to the
   first fill, hedges once every leg is in (unwind or carry), and when nothing is left on its way
   settles the trade's figures and releases the held money less what the orders cost. While
   another leg's order is still on its way only this leg changes: it alone is decoded and
   patched in the stored legs. The trade, the run's money and (for a missed trade) the
   decision's reason are written in one statement with the COMMIT (one round trip).
4. After commit: the trade's next steps are returned to the caller to schedule, a completed
   trade is broadcast, and on the live path the step's lateness (when its book was asked) goes
   to /metrics: once per order, never for a step found done.

`arrive(trade_id=..., step=...)` runs a step known by its name only (a task sent before steps
carried their order, a tool, a test): the trade's orders are read first, one round trip more.
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
from typing import Any, NamedTuple

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
    changes_only_its_leg,
    fill_at_arrival,
    hedge,
    is_complete,
    pending_steps,
    pending_steps_of_json,
    send_waiting,
    settle_arrival,
    unwind_at_arrival,
)
from simulator.core.fills import fill_pct
from simulator.core.liquidity import LiquidityLedger
from simulator.engine.arrival_store import step_transaction, trade_orders
from simulator.engine.broadcast import broadcast_decision
from simulator.engine.inputs import draw_key, fee_schedules, sim_config, utc_day
from simulator.engine.validation import arrival_book
from simulator.models import Decision, SimulatorRun, SimulatorTrade

logger = logging.getLogger(__name__)


class Step(NamedTuple):
    """One order on its way to its venue, as its arrival task carries it."""

    trade_id: int
    step: str  # "leg:<i>" (the leg's order) or "unwind:<i>" (the sale of its unhedged excess)
    at: datetime  # when the order arrives
    user_id: int  # whose keys ask the venue for its book
    venue: str
    instrument_id: str
    side: str

    def task_args(self) -> tuple[int, str, int, str, str, str, str]:
        """`arrive_task`'s arguments (the broker's JSON: the time in ISO 8601)."""
        return (
            self.trade_id,
            self.step,
            self.user_id,
            self.venue,
            self.instrument_id,
            self.side,
            self.at.isoformat(),
        )

    @classmethod
    def from_task_args(
        cls, trade_id: int, step: str, user_id: int, venue: str, instrument_id: str, side: str, at: str
    ) -> Step:
        return cls(trade_id, step, datetime.fromisoformat(at), user_id, venue, instrument_id, side)


# (user id, the order (its venue, instrument_id, side), when it arrives) -> (the venue's book
# then, or None and why not)
ArrivalBooks = Callable[[int, Step, datetime], tuple[Book | None, str]]

MONEY_FIELDS = (
    "balance_usd",
    "reserved_usd",
    "traded_today_usd",
    "expected_pnl_usd",
    "unhedged_exposure_usd",
    "unhedged_contracts",
)
FIGURE_FIELDS = (  # the trade's, once its orders are done
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
)


def venue_books(user_id: int, order: Step, at: datetime) -> tuple[Book | None, str]:
    """The live path (and the demo's, whose venue is the exchange double fed by the replay): a
    read-only book call made now, at the arrival time, with the user's keys. Its lateness goes to
    /metrics once the step is done (`arrive_step`; a replay's books are on the recording's clock:
    not observed)."""
    result = arrival_book(user_id, order.venue, order.instrument_id, order.side)
    if not result.ok:
        return None, f"no book at arrival: {result.kind.replace('_', ' ')}: {result.detail}"
    return result.value, ""


@dataclass(frozen=True, slots=True)
class Arrived:
    """What a step did: the trade's arrival outcome as committed ("" while orders are on their
    way), whether this call did the step, and the steps that became due because of it (to
    schedule)."""

    outcome: str
    done_now: bool
    next_steps: list[Step]


def _steps(
    trade_id: int, user_id: int, orders: Sequence[LegOrder], names: set[str] | None = None
) -> list[Step]:
    """The orders still on their way (of those named, when `names` is given), as steps."""
    steps = []
    for name, at in pending_steps(orders):
        if names is None or name in names:
            order = orders[_parse(name)[1]]
            steps.append(Step(trade_id, name, at, user_id, order.venue, order.instrument_id, order.side))
    return steps


def steps_of(trade: SimulatorTrade) -> list[Step]:
    """The trade's orders still on their way, as steps to schedule (reads `legs` and `user_id`)."""
    legs = trade.legs
    steps = []
    for name, at in pending_steps_of_json(legs):
        leg = legs[_parse(name)[1]]
        steps.append(Step(trade.pk, name, at, trade.user_id, leg["venue"], leg["instrument_id"], leg["side"]))
    return steps


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
    """Run one arrival step of a trade once, known by its name only: the trade's orders are read
    first (see `arrive_step`). None when the trade does not exist."""
    _parse(step)  # a malformed name is refused before anything is read
    trade = trade_orders(trade_id)
    if trade is None:
        return None
    due = [found for found in steps_of(trade) if found.step == step]
    if not due:  # done already, or not sent: the steps still pending, as for a found-done step
        return Arrived(outcome=trade.arrival_outcome, done_now=False, next_steps=steps_of(trade))
    return arrive_step(due[0], books)


def arrive_step(step: Step, books: ArrivalBooks | None = None) -> Arrived | None:
    """Run one arrival step once. None when its trade does not exist."""
    kind, index = _parse(step.step)
    live = books is None or books is venue_books
    asked_at = datetime.now(UTC)
    book, unavailable = (books or venue_books)(step.user_id, step, step.at)
    written = None
    with step_transaction() as store:
        locked = store.lock(step.trade_id)
        if locked is None:
            return None
        run, trade = locked
        legs: list[dict[str, Any]] = trade.legs
        order = LegOrder.from_json(legs[index]) if index < len(legs) else None
        if order is None or _due(order, kind) is None:  # done by another delivery
            # Maybe by this step's own earlier try whose COMMIT reply was lost: the steps it made
            # due are sent again here, not left to the overdue sweep (each runs once anyway).
            return Arrived(outcome=trade.arrival_outcome, done_now=False, next_steps=steps_of(trade))
        if (order.venue, order.instrument_id, order.side) != (step.venue, step.instrument_id, step.side):
            raise ValueError(f"trade {step.trade_id} {step.step}: its order is not the one the step carries")
        schedule = fee_schedules(trade.intent.pair)[(order.venue, order.instrument_id)]
        run_fields: tuple[str, ...] = ()
        if kind == "leg":
            config = sim_config(run)
            ledger = LiquidityLedger.from_json(run.liquidity_state)
            done = _fill(order, index, book, unavailable, run, trade, ledger, config, schedule)
            if book is not None and done.fills:
                ledger.consume(book, done.fills)
                run.liquidity_state = ledger.to_json()
                run_fields = ("liquidity_state",)
        else:
            bids = book.bids if book is not None else None
            done = unwind_at_arrival(order, bids=bids, schedule=schedule, unavailable=unavailable)

        if changes_only_its_leg(legs, index):
            # Another order is still on its way: nothing is hedged or settled, no step is new.
            store.write(trade, (), run, run_fields, leg=(index, done.as_json()))
            outcome, next_steps = "", []
        else:
            before = tuple(done if i == index else LegOrder.from_json(leg) for i, leg in enumerate(legs))
            after = _send_and_hedge(before, config) if kind == "leg" else before
            changed = {i for i, (old, new) in enumerate(zip(before, after, strict=True)) if new is not old}
            new_names = {name for name, _ in pending_steps(after) if _parse(name)[1] in changed}
            next_steps = _steps(trade.pk, trade.user_id, after, new_names)
            leg, trade_fields = None, ()
            if changed <= {index}:
                leg = (index, after[index].as_json())
            else:
                trade.legs = [order.as_json() for order in after]
                trade_fields = ("legs",)
            missed, returning = None, False
            if is_complete(after):
                missed = _complete(trade, run, after)
                trade_fields += FIGURE_FIELDS
                run_fields += MONEY_FIELDS
                # The page hears of a trade twice: queued at decision, and here with its fills
                # (a backtest's trades are not broadcast: `broadcast._live`).
                returning = run.kind == SimulatorRun.LIVE
            written = store.write(
                trade, trade_fields, run, run_fields, leg=leg, missed=missed, returning=returning
            )
            outcome = trade.arrival_outcome
    if live:  # once per order: a redelivery or a sweep's re-send found done above is not observed
        telemetry.observe_arrival_lateness(step.at, asked_at)
    if written is not None:
        # The steps in between are milliseconds apart (the API shows them).
        transaction.on_commit(partial(broadcast_decision, written[1], written[0]))
    logger.info(
        "event=arrived trade_id=%s step=%s outcome=%s", step.trade_id, step.step, outcome or "in_flight"
    )
    return Arrived(outcome=outcome, done_now=True, next_steps=next_steps)


def _send_and_hedge(orders: tuple[LegOrder, ...], config: SimConfig) -> tuple[LegOrder, ...]:
    """After a leg's fill: a waiting leg goes out; all in: hedge."""
    orders = send_waiting(orders)
    if all(o.state not in (WAITING, SENT) for o in orders):
        orders = hedge(orders, policy=config.execution.unhedged)
    return orders


def _fill(
    order: LegOrder,
    index: int,
    book: Book | None,
    unavailable: str,
    run: SimulatorRun,
    trade: SimulatorTrade,
    ledger: LiquidityLedger,
    config: SimConfig,
    schedule: FeeSchedule,
) -> LegOrder:
    """The leg's order fills at its arrival book (what this run took from that snapshot and a
    seeded competitor share gone first)."""
    competition = config.execution.competition
    marginal = competition.is_marginal(trade.signal_edge_cents or 0, run.min_net_edge_cents or 0)
    return fill_at_arrival(
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
    queue = sorted(steps, key=lambda item: item.at)
    done = 0
    while queue:
        arrived = arrive_step(queue.pop(0), books)
        if arrived is not None and arrived.done_now:
            done += 1
            queue = sorted([*queue, *arrived.next_steps], key=lambda item: item.at)
    return done


def in_flight_steps(decision: Decision) -> list[Step]:
    """The steps of a decision's trade still on their way ([] when it did not trade)."""
    if decision.outcome != Decision.TRADED:
        return []
    if Decision.trade.is_cached(decision):  # just decided here: the trade as written, no query
        return steps_of(decision.trade)
    trade = (
        SimulatorTrade.objects.filter(decision_id=decision.pk, arrival_outcome="")
        .only("legs", "user")
        .first()
    )
    return steps_of(trade) if trade is not None else []
