"""Market data over the venues' websockets: L2 books kept from snapshot + deltas, and market
lifecycle events. What a stream client hands to ingest is defined here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

ACTIVATED = "activated"  # trading (again): Kalshi `activated`
CLOSED = "closed"  # trading has stopped; no result yet
DETERMINED = "determined"  # the result is known (Kalshi `determined`, Polymarket `market_resolved`)
SETTLED = "settled"  # paid out at the venue (Kalshi `settled`)
# The market closes at the event's `close_time` now (Kalshi `close_date_updated`).
CLOSE_TIME_CHANGED = "close_time_changed"
LIFECYCLE_KINDS = (ACTIVATED, CLOSED, DETERMINED, SETTLED, CLOSE_TIME_CHANGED)


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """One market's step towards resolution, as a venue's feed (or its REST market) reports it."""

    venue: str  # "kalshi" | "polymarket"
    instrument_id: str  # Kalshi market ticker | Polymarket token id
    kind: str  # one of LIFECYCLE_KINDS
    result: str | None  # "yes" if this instrument's outcome won, "no" if it lost, None if not known
    venue_ts_ms: int | None = None
    close_time: datetime | None = None  # CLOSE_TIME_CHANGED: when the market closes now
