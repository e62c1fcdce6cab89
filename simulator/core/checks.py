"""The seven safety checks, each a pure function returning a `Check` a user can read.

Order (cheap first), fixed by the JSON contract: has_orders, net_edge, instrument_ids,
exchange_keys, exchange_validation, balance, daily_cap. A decision always lists all seven:
checks after the first failure are listed with ok=False and detail "not run: earlier check
failed" (see `complete`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_FLOOR, Decimal

from exchanges.books import KALSHI, NO, POLYMARKET, VENUES, YES
from simulator.core.fills import PairFill, requested_size
from simulator.core.types import (
    Check,
    ExchangeValidation,
    Intent,
    IntentLeg,
    Keys,
    RunLimits,
    RunState,
)

HAS_ORDERS = "has_orders"
NET_EDGE = "net_edge"
INSTRUMENT_IDS = "instrument_ids"
EXCHANGE_KEYS = "exchange_keys"
EXCHANGE_VALIDATION = "exchange_validation"
BALANCE = "balance"
DAILY_CAP = "daily_cap"
CHECK_NAMES = (HAS_ORDERS, NET_EDGE, INSTRUMENT_IDS, EXCHANGE_KEYS, EXCHANGE_VALIDATION, BALANCE, DAILY_CAP)

NOT_RUN_DETAIL = "not run: earlier check failed"
CENT = Decimal("0.01")
USD_PLACES = Decimal("0.0001")
_ID_NAMES = {KALSHI: "ticker", POLYMARKET: "token id"}


def format_usd(amount: Decimal) -> str:
    """`$3.20`, or `$0.0175` when the amount has sub-cent digits (shown to 4 places at most)."""
    if amount == amount.quantize(CENT):
        return f"${amount.quantize(CENT)}"
    return f"${amount.quantize(USD_PLACES)}"


def format_cents(cents: Decimal) -> str:
    """Rounded down, so an edge just under a minimum never reads as equal to it."""
    return f"{cents.quantize(CENT, rounding=ROUND_FLOOR)}c"


def leg_label(venue: str, instrument_id: str, side: str) -> str:
    # Polymarket token ids are ~77 digits: keep both ends, enough to tell them apart.
    shown = instrument_id if len(instrument_id) <= 20 else f"{instrument_id[:8]}...{instrument_id[-6:]}"
    return f"{venue} {shown} {side}"


def _label(leg: IntentLeg) -> str:
    return leg_label(leg.venue, leg.instrument_id, leg.side)


def not_run(name: str, detail: str = NOT_RUN_DETAIL) -> Check:
    return Check(name=name, ok=False, detail=detail)


def complete(checks: Iterable[Check]) -> tuple[Check, ...]:
    """The checks run so far, followed by the remaining names as not run, in contract order."""
    ran = tuple(checks)
    names = tuple(check.name for check in ran)
    if names != CHECK_NAMES[: len(names)]:
        raise ValueError(f"checks out of order: {names}")
    return ran + tuple(not_run(name) for name in CHECK_NAMES[len(ran) :])


def check_has_orders(intent: Intent, limits: RunLimits) -> Check:
    """A hedged pair: two legs, sane prices and sizes, and at least one whole contract after the cap."""
    if not intent.legs:
        return Check(HAS_ORDERS, False, "intent has no orders")
    if len(intent.legs) != 2:
        return Check(HAS_ORDERS, False, f"a hedged pair needs 2 orders, intent has {len(intent.legs)}")
    for leg in intent.legs:
        if leg.venue not in VENUES:
            return Check(HAS_ORDERS, False, f"unknown venue {leg.venue!r}")
        if leg.side not in (YES, NO):
            return Check(HAS_ORDERS, False, f"{_label(leg)}: side must be yes or no")
        if not (Decimal(0) < leg.limit_price < Decimal(1)):
            return Check(
                HAS_ORDERS, False, f"{_label(leg)}: limit price {leg.limit_price} not between 0 and 1"
            )
        if leg.size <= 0:
            return Check(HAS_ORDERS, False, f"{_label(leg)}: size {leg.size} is not positive")
    if intent.size < 1:
        return Check(HAS_ORDERS, False, f"intent size {intent.size} is under 1 contract")
    size = requested_size(intent, limits)
    if size < 1:
        worst = max(leg.limit_price for leg in intent.legs)
        return Check(
            HAS_ORDERS,
            False,
            f"your max leg {format_usd(limits.max_leg_usd)} buys no whole contract at {worst}",
        )
    capped = f" (capped from {intent.size} by your max leg {format_usd(limits.max_leg_usd)})"
    return Check(HAS_ORDERS, True, f"2 orders, {size} contracts" + (capped if size < intent.size else ""))


def check_net_edge(intent: Intent, limits: RunLimits) -> Check:
    edge, minimum = format_cents(intent.net_edge_cents), format_cents(limits.min_net_edge_cents)
    if intent.net_edge_cents < limits.min_net_edge_cents:
        return Check(NET_EDGE, False, f"net edge {edge} < your minimum {minimum}")
    return Check(NET_EDGE, True, f"net edge {edge} >= your minimum {minimum}")


def check_fill_edge(intent: Intent, limits: RunLimits, pair: PairFill) -> Check:
    """net_edge judged again on the real fills and fees at the validated book."""
    minimum, fills = format_cents(limits.min_net_edge_cents), format_cents(pair.net_edge_cents)
    if not pair.meets(limits.min_net_edge_cents):
        return Check(NET_EDGE, False, f"fills at the validated book give {fills} < your minimum {minimum}")
    return Check(
        NET_EDGE,
        True,
        f"net edge {format_cents(intent.net_edge_cents)} (fills: {fills}) >= your minimum {minimum}",
    )


def check_instrument_ids(intent: Intent) -> Check:
    for leg in intent.legs:
        if not leg.instrument_id.strip():
            return Check(INSTRUMENT_IDS, False, f"{leg.venue} {_ID_NAMES.get(leg.venue, 'id')} missing")
    shown = ", ".join(f"{leg.venue} {leg.instrument_id}" for leg in intent.legs)
    return Check(INSTRUMENT_IDS, True, shown)


def check_exchange_keys(intent: Intent, keys: Keys) -> Check:
    venues = sorted({leg.venue for leg in intent.legs})
    missing = [venue for venue in venues if not keys.has(venue)]
    if missing:
        return Check(EXCHANGE_KEYS, False, f"no {' or '.join(missing)} keys saved on your profile")
    return Check(EXCHANGE_KEYS, True, f"keys saved for {', '.join(venues)}")


def check_exchange_books(intent: Intent, validation: ExchangeValidation) -> Check:
    """Every leg answered, its market tradeable, asks at or below its limit; balances known."""
    for leg in intent.legs:
        result = validation.leg_for(leg.venue, leg.instrument_id, leg.side)
        if result is None:
            return Check(EXCHANGE_VALIDATION, False, f"{_label(leg)}: no validation result")
        if not result.ok:
            why = f": {result.detail}" if result.detail else ""
            return Check(EXCHANGE_VALIDATION, False, f"{_label(leg)}: {result.kind.replace('_', ' ')}{why}")
        if not result.tradeable:
            return Check(EXCHANGE_VALIDATION, False, f"{_label(leg)}: market not open for trading")
        if result.book is None:
            return Check(EXCHANGE_VALIDATION, False, f"{_label(leg)}: no order book")
        best = result.book.best_ask
        if best is None:
            return Check(EXCHANGE_VALIDATION, False, f"{_label(leg)}: no asks in the book")
        if best.price > leg.limit_price:
            return Check(
                EXCHANGE_VALIDATION,
                False,
                f"{_label(leg)}: best ask {best.price} > limit {leg.limit_price}",
            )
    if not validation.ok:
        return Check(EXCHANGE_VALIDATION, False, validation.detail or "exchange validation failed")
    for venue in sorted({leg.venue for leg in intent.legs}):
        if validation.balances_usd.get(venue) is None:
            return Check(EXCHANGE_VALIDATION, False, f"{venue} balance unknown")
    return Check(EXCHANGE_VALIDATION, True, "books, market status and balances ok")


def check_no_depth_left(leg: IntentLeg, available: Decimal, seen: Decimal) -> Check:
    """The leg's book had asks at the limit, but under one whole contract is left to take."""
    if seen > available:
        detail = (
            f"{_label(leg)}: this run already took the depth at or below {leg.limit_price} "
            f"on this book snapshot ({available} of {seen} left)"
        )
    else:
        detail = f"{_label(leg)}: only {available} contracts at or below {leg.limit_price}"
    return Check(EXCHANGE_VALIDATION, False, detail)


def check_venue_balances(validation: ExchangeValidation, cost_by_venue: Mapping[str, Decimal]) -> Check:
    """Each venue's real balance covers the most its orders can cost (every contract at the limit,
    plus the fee): the collateral the venue would hold."""
    for venue, cost in sorted(cost_by_venue.items()):
        balance = validation.balances_usd.get(venue)
        if balance is None:
            return Check(EXCHANGE_VALIDATION, False, f"{venue} balance unknown")
        if balance < cost:
            return Check(
                EXCHANGE_VALIDATION,
                False,
                f"{venue} balance {format_usd(balance)} < leg cost {format_usd(cost)}",
            )
    return Check(EXCHANGE_VALIDATION, True, "books, market status and balances ok")


def check_balance(cost_usd: Decimal, state: RunState) -> Check:
    cost, balance = format_usd(cost_usd), format_usd(state.balance_usd)
    if cost_usd > state.balance_usd:
        return Check(BALANCE, False, f"worst-case cost {cost} > run balance {balance}")
    return Check(BALANCE, True, f"worst-case cost {cost} <= run balance {balance}")


def check_daily_cap(cost_usd: Decimal, state: RunState, limits: RunLimits) -> Check:
    total = state.traded_today_usd + cost_usd
    words = (
        f"today {format_usd(state.traded_today_usd)} + this trade {format_usd(cost_usd)} "
        f"= {format_usd(total)}"
    )
    if total > limits.daily_cap_usd:
        return Check(DAILY_CAP, False, f"{words} > your daily cap {format_usd(limits.daily_cap_usd)}")
    return Check(DAILY_CAP, True, f"{words} <= your daily cap {format_usd(limits.daily_cap_usd)}")


def reason_of(checks: Iterable[Check]) -> str:
    """ "" when every check passed, else "<name>: <detail>" of the first failing one."""
    for check in checks:
        if not check.ok:
            return f"{check.name}: {check.detail}"
    return ""
