"""The books and market statuses the stream clients keep, shared with the processes that decide
and fill orders.

Live ingest publishes every whole book it hands to the detector (Django's cache: Redis when
REDIS_URL is set, so Celery workers on other machines read them), and with it the market's status
as the stream knows it (ingest.streams: a REST answer taken once per connection, then the venue's
lifecycle events). Exchange validation and an order's arrival read a book or a status from here
when it is fresh, and ask the venue's REST API only when it is not (or the cache is unreachable). A
live stream restates a quiet book, and its market's status, at least every 1.5 s, so anything older
than `SIMULATOR_STREAM_BOOK_MAX_AGE_MS` (2 s) means its stream is not live: REST answers then.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

from exchanges.books import Book
from exchanges.results import MarketStatus

logger = logging.getLogger("ingest.stream_books")

KEPT_S = 10  # a book or status nobody restates is gone after this long
_KEY = "streambook:{venue}:{instrument}:{side}"
_STATUS_KEY = "streamstatus:{venue}:{instrument}"


@dataclass(frozen=True, slots=True)
class StreamedStatus:
    """A market's status as a live stream vouched for it at `vouched_ms` (wall clock)."""

    status: MarketStatus
    vouched_ms: int


def _key(venue: str, instrument: str, side: str) -> str:
    return _KEY.format(venue=venue, instrument=instrument, side=side)


def _status_key(venue: str, instrument: str) -> str:
    return _STATUS_KEY.format(venue=venue, instrument=instrument)


def publish_books(books: Iterable[Book], statuses: Iterable[StreamedStatus] = ()) -> None:
    """Keep these books (each replaces its instrument's side) and market statuses (each replaces
    its market's) for the deciding processes, in one cache round trip."""
    kept: dict[str, object] = {_key(b.venue, b.instrument_id, b.side): b for b in books}
    for streamed in statuses:
        kept[_status_key(streamed.status.venue, streamed.status.instrument_id)] = streamed
    if kept:
        cache.set_many(kept, KEPT_S)


_outage_logged = False


def _unreadable(exc: RedisError) -> None:
    """The cache is down: nothing is fresh, so every caller asks the venue (said once, loudly)."""
    global _outage_logged
    log = logger.debug if _outage_logged else logger.warning
    _outage_logged = True
    log("ingest.stream_books cache_unreadable error=%s: decisions ask the venues", type(exc).__name__)


def _fresh(received_ms: int, now_ms: int) -> bool:
    return now_ms - received_ms <= settings.SIMULATOR_STREAM_BOOK_MAX_AGE_MS


def _usable(streamed: StreamedStatus | None, now_ms: int) -> MarketStatus | None:
    """The status if fresh; a market said to trade past its close time is not taken on the
    stream's word (Kalshi sends no event when a market reaches its close time): the venue is
    asked."""
    if streamed is None or not _fresh(streamed.vouched_ms, now_ms):
        return None
    status = streamed.status
    if status.tradeable and status.close_time is not None and status.close_time.timestamp() * 1000 <= now_ms:
        return None
    return status


def fresh_book(venue: str, instrument: str, side: str, *, now_ms: int) -> Book | None:
    """The streamed book of this instrument's side if stream books are used and it was received
    within the max age; else None (ask the venue), also while the cache is unreachable."""
    if not settings.SIMULATOR_STREAM_BOOKS:
        return None
    try:
        book = cache.get(_key(venue, instrument, side))
    except RedisError as exc:
        _unreadable(exc)
        return None
    if book is None or not _fresh(book.received_ts_ms, now_ms):
        return None
    return book


# A side's (book, its market's status) as the streams vouch for them now; None where they do not.
Streamed = tuple[Book | None, MarketStatus | None]


def fresh_legs(legs: Sequence[tuple[str, str, str]], *, now_ms: int) -> dict[tuple[str, str, str], Streamed]:
    """For each (venue, instrument, side): the streamed book of that side and the streamed status
    of its market, each None unless stream books are used and it is within the max age (then ask
    the venue; so too while the cache is unreachable); all in one round trip."""
    if not settings.SIMULATOR_STREAM_BOOKS or not legs:
        return {leg: (None, None) for leg in legs}
    keys = {leg: (_key(*leg), _status_key(*leg[:2])) for leg in legs}
    try:
        found = cache.get_many([key for pair in keys.values() for key in pair])
    except RedisError as exc:
        _unreadable(exc)
        return {leg: (None, None) for leg in legs}
    answers: dict[tuple[str, str, str], Streamed] = {}
    for leg, (book_key, status_key) in keys.items():
        book, streamed = found.get(book_key), found.get(status_key)
        answers[leg] = (
            book if book is not None and _fresh(book.received_ts_ms, now_ms) else None,
            _usable(streamed, now_ms),
        )
    return answers
