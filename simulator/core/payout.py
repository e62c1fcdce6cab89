"""What a trade pays when its markets resolve (pure: no Django, no I/O).

Each leg holds contracts of one side (yes or no) of one venue's market; a contract pays $1 when
its side is the venue's result, else nothing. A hedged pair has one leg on each venue on
opposite sides, so when both venues resolve the same question the same way exactly one leg pays:
matched x $1, the trade's expected payout. When the venues' results differ (their rules or
sources disagree: the pair's resolution risk), both legs pay or neither does, and the realised
P&L shows it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from simulator.core.fills import USD_PLACES

RESULTS = ("yes", "no")


def _size(fills: Iterable[Mapping[str, Any]] | None) -> Decimal:
    return sum((Decimal(str(fill["size"])) for fill in fills or ()), Decimal(0))


def leg_contracts(leg: Mapping[str, Any]) -> Decimal:
    """Contracts a leg holds (a trade's `legs` JSON): its fills less what its unwind sold. A
    carried excess is held, so it pays too."""
    unwind = leg.get("unwind") or {}
    return _size(leg.get("fills")) - _size(unwind.get("fills"))


def payout_usd(legs: Iterable[Mapping[str, Any]], results: Mapping[str, str]) -> Decimal:
    """$1 per contract of every leg whose side is its venue's result. `results`: venue -> "yes"
    or "no" for every venue the legs are on (a leg on a venue without a result is an error)."""
    total = Decimal(0)
    for leg in legs:
        venue, side = leg["venue"], leg["side"]
        if results.get(venue) not in RESULTS:
            raise ValueError(f"no result for venue {venue!r}")
        if side == results[venue]:
            total += leg_contracts(leg)
    return total.quantize(USD_PLACES)  # whole contracts: exact


def carried_contracts(legs: Iterable[Mapping[str, Any]]) -> Decimal:
    """Contracts a trade holds unhedged (its legs' carried sizes)."""
    return sum((Decimal(str(leg.get("carried_size") or "0")) for leg in legs), Decimal(0))
