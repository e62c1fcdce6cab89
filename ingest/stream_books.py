"""The books the stream clients keep, shared with the processes that decide and fill orders.

Live ingest publishes every whole book it hands to the detector (Django's cache: Redis when
REDIS_URL is set, so Celery workers on other machines read them); exchange validation and an
order's arrival read a book from here when it is fresh, and ask the venue's REST API only when it
is not. A live stream restates a quiet book at least every 1.5 s, so a book older than
`SIMULATOR_STREAM_BOOK_MAX_AGE_MS` (2 s) means its stream is not live: REST answers then.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.core.cache import cache

from exchanges.books import Book

KEPT_S = 10  # a book nobody restates is gone after this long
_KEY = "streambook:{venue}:{instrument}:{side}"


def _key(venue: str, instrument: str, side: str) -> str:
    return _KEY.format(venue=venue, instrument=instrument, side=side)


def publish_books(books: Iterable[Book]) -> None:
    """Keep these books (each replaces its instrument's side) for the deciding processes."""
    cache.set_many({_key(b.venue, b.instrument_id, b.side): b for b in books}, KEPT_S)


def fresh_book(venue: str, instrument: str, side: str, *, now_ms: int) -> Book | None:
    """The streamed book of this instrument's side if stream books are used and it was received
    within the max age; else None (ask the venue)."""
    if not settings.SIMULATOR_STREAM_BOOKS:
        return None
    book = cache.get(_key(venue, instrument, side))
    if book is None or now_ms - book.received_ts_ms > settings.SIMULATOR_STREAM_BOOK_MAX_AGE_MS:
        return None
    return book
