"""Exchange validation for the engine: read-only calls through the venue adapters, built from
the user's decrypted secrets (they never leave this module: not logged, not in any result).

Per leg: market status and the order book; per venue: the balance. Each answer becomes a core
`LegValidation` with the venue's words, the typed kind (ok, unreachable, rate_limited, rejected,
malformed, closed) and the call latency. Calls go through one process-wide rate limiter
(Redis-backed when REDIS_URL is set, so every worker shares the venue budget), and each call is
bounded by a timeout. The two venues are asked concurrently.

Where each answer comes from:
- a market's status and a side's book: from live ingest's streams when a live stream vouched
  for them within `SIMULATOR_STREAM_BOOK_MAX_AGE_MS` (ingest.stream_books; the status follows
  the venue's lifecycle events, so a market that closed is refused without a call); else over
  REST, shared for a short TTL per (venue, instrument, credential) through `BookCache`.
- the balance: over REST, kept `SIMULATOR_BALANCE_TTL_S` (30 s) and asked again in the
  background once half that old, so a decision seldom waits for it. A dry run never spends at
  the venue: the balance moves only with the user's own deposits and withdrawals there, and
  the check (could this account have paid for the legs?) stands on an answer at most that old.
  Trading for real would have to count its own open orders against it as well.

The adapter built from a user's secret is kept per (user, venue) and reused while the secret's
stamp (`secret_stamps`: its row id and `updated_at`, read by the engine with the user's keys)
is unchanged, so a decision neither reads nor decrypts the secret again, nor parses a key.
Replacing or deleting a secret changes the stamp: the next decision reads the new one. Without a
stamp (a caller outside `secrets_as_of`), the secret is read on every call.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings

from accounts.models import UserSecret
from accounts.selectors import decrypted_secret
from exchanges.books import KALSHI, POLYMARKET, Book
from exchanges.kalshi import KalshiAdapter, kalshi_credentials_from_secret
from exchanges.polymarket import PolymarketAdapter, polymarket_credentials_from_secret
from exchanges.ratelimit import BookCache, LocalRateLimiter, RedisRateLimiter
from exchanges.results import RATE_LIMITED, REJECTED, CallResult
from ingest.stream_books import Streamed, fresh_book, fresh_legs
from simulator.core import ExchangeValidation, IntentLeg, LegValidation

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 3.0
DEFAULT_CACHE_TTL_S = 0.25
DEFAULT_BALANCE_TTL_S = 30.0
CLOSED = "closed"
MIN_BACKOFF_S = 1.0

Validator = Callable[[int, Sequence[IntentLeg], datetime], ExchangeValidation]
# The same question answered only from the cache: None when a venue would have to be called.
CachedValidator = Callable[[int, Sequence[IntentLeg], datetime], ExchangeValidation | None]
SecretStamp = tuple[int, datetime]
# (user id, {exchange: stamp}) for the decision being made in this context; see `secrets_as_of`.
_secret_stamps: ContextVar[tuple[int, Mapping[str, SecretStamp]] | None] = ContextVar(
    "simulator_secret_stamps", default=None
)


def secret_stamps(*, user_id: int) -> dict[str, SecretStamp]:
    """{exchange: (row id, updated_at)} of the user's saved secrets, without their contents: which
    keys exist, and a stamp that changes whenever one is replaced (or deleted and saved again)."""
    rows = UserSecret.objects.filter(user_id=user_id).values_list("exchange", "pk", "updated_at")
    return {exchange: (pk, updated_at) for exchange, pk, updated_at in rows}


@contextmanager
def secrets_as_of(user_id: int, stamps: Mapping[str, SecretStamp]) -> Iterator[None]:
    """Validations in this block may reuse what they built from a secret with the same stamp."""
    token = _secret_stamps.set((user_id, stamps))
    try:
        yield
    finally:
        _secret_stamps.reset(token)


def _ms(*results: CallResult[Any]) -> int:
    return round(sum(result.latency_ms for result in results))


class ExchangeValidator:
    """Validates the legs of one intent for one user. Thread-safe; one per process is enough."""

    def __init__(
        self,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        cache: BookCache | None = None,
        balances: BookCache | None = None,
        rate_limiter: Any = None,
        load_secret: Callable[..., dict | None] = decrypted_secret,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout_s = timeout_s
        self.cache = cache if cache is not None else BookCache(ttl_s=DEFAULT_CACHE_TTL_S)
        self.balances = balances if balances is not None else BookCache(ttl_s=DEFAULT_BALANCE_TTL_S)
        self._refreshing: set[tuple[str, str]] = set()  # (venue, fingerprint) asked in the background
        self.rate_limiter = rate_limiter
        self._load_secret = load_secret
        self._adapters: dict[tuple[str, str, str], Any] = {}
        # (user id, venue) -> (secret stamp, adapter or None, why not)
        self._access: dict[tuple[int, str], tuple[SecretStamp | None, Any, str]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sim-validate")
        # `from_cache` answers, kept until the first answer they were built from goes stale:
        # (user, adapters, legs) -> (fresh until, on the cache's clock; the validation)
        self._memo: dict[tuple, tuple[float, ExchangeValidation]] = {}
        self._clock = clock
        # (venue, credential fingerprint) -> monotonic time before which the venue asked us not to
        # call again (its 429 Retry-After); calls in that window are refused without a request.
        self._backoff_until: dict[tuple[str, str], float] = {}

    # --- adapters, one per (venue, credential), reused across users' decisions -------------------

    def _adapter(self, venue: str, secret: dict) -> Any:
        """The venue adapter for these credentials; raises ValueError naming a missing field."""
        if venue == KALSHI:
            credentials: Any = kalshi_credentials_from_secret(secret)
        else:
            credentials = polymarket_credentials_from_secret(secret)
        # The fingerprint names the key material only: the host is part of which adapter it is.
        key = (venue, credentials.fingerprint, credentials.resolved_host)
        with self._lock:
            adapter = self._adapters.get(key)
            if adapter is None:
                cls = KalshiAdapter if venue == KALSHI else PolymarketAdapter
                adapter = cls(credentials, timeout_s=self.timeout_s, rate_limiter=self.rate_limiter)
                self._adapters[key] = adapter
            return adapter

    def _cached[T](
        self, adapter: Any, what: str, fetch: Callable[[], CallResult[T]], cache: BookCache | None = None
    ) -> CallResult[T]:
        """`fetch`'s answer, shared through the cache (default: the short one) for its TTL."""
        if _cache_only.get():
            fetch = _refuse_to_call
        cache = cache or self.cache
        return self._call(
            adapter, what, lambda: cache.get_or_fetch(adapter.venue, what, adapter.fingerprint, fetch)
        )

    def _call[T](self, adapter: Any, what: str, fetch: Callable[[], CallResult[T]]) -> CallResult[T]:
        """`fetch()` unless the venue asked us to slow down; a 429 it answers sets that pause."""
        key = (adapter.venue, adapter.fingerprint)
        with self._lock:
            wait_s = self._backoff_until.get(key, 0.0) - self._clock()
        if wait_s > 0:
            return CallResult(
                kind=RATE_LIMITED,
                venue=adapter.venue,
                call=what.split(":", 1)[0],
                detail=f"{adapter.venue} asked us to slow down (429); not calling it for another {wait_s:.1f} s",
                retry_after_s=wait_s,
                latency_ms=0.0,
            )
        result = fetch()
        if result.kind == RATE_LIMITED:
            # Honour the venue's Retry-After (at least 1 s, as Kalshi's docs ask) for every call.
            pause_s = max(result.retry_after_s or 0.0, MIN_BACKOFF_S)
            with self._lock:
                self._backoff_until[key] = max(self._backoff_until.get(key, 0.0), self._clock() + pause_s)
        return result

    # --- one venue: its legs and its balance -------------------------------------------------------

    def _leg(
        self, adapter: Any, leg: IntentLeg, streamed: Mapping[tuple[str, str, str], Streamed]
    ) -> LegValidation:
        streamed_book, streamed_status = streamed.get((leg.venue, leg.instrument_id, leg.side), (None, None))
        if streamed_status is not None:
            status = CallResult.success(
                streamed_status, venue=adapter.venue, call="market_status", latency_ms=0.0
            )
        else:
            status = self._cached(adapter, _status_key(leg), lambda: adapter.market_status(leg.instrument_id))
        if not status.ok:
            return self._failed(leg, status.kind, status.detail, _ms(status))
        market = status.value
        if not market.tradeable:
            detail = f"market is {market.venue_status}" + (
                f" (result {market.result})" if market.result else ""
            )
            return self._failed(leg, CLOSED, detail, _ms(status))
        if streamed_book is not None:
            book_result = CallResult.success(
                streamed_book, venue=adapter.venue, call="orderbook", latency_ms=0.0
            )
        else:
            book_result = self._cached(
                adapter, _book_key(leg), lambda: _side_book(adapter, leg.instrument_id, leg.side)
            )
        if not book_result.ok:
            return self._failed(leg, book_result.kind, book_result.detail, _ms(status, book_result))
        return LegValidation(
            venue=leg.venue,
            instrument_id=leg.instrument_id,
            side=leg.side,
            ok=True,
            kind="ok",
            detail=f"market {market.venue_status}",
            tradeable=True,
            book=book_result.value,
            latency_ms=_ms(status, book_result),
        )

    @staticmethod
    def _failed(leg: IntentLeg, kind: str, detail: str, latency_ms: int | None) -> LegValidation:
        return LegValidation(
            venue=leg.venue,
            instrument_id=leg.instrument_id,
            side=leg.side,
            ok=False,
            kind=kind,
            detail=detail,
            tradeable=False,
            book=None,
            latency_ms=latency_ms,
        )

    def _access_from(self, venue: str, secret: dict | None) -> tuple[Any, str]:
        """-> (the adapter, "") or (None, why the user's secret cannot be used)."""
        if secret is None:
            return None, f"no {venue} keys saved on your profile"
        try:
            return self._adapter(venue, secret), ""
        except ValueError as error:  # the message names the missing field, never its value
            return None, f"{venue} keys unusable: {error}"

    def _venue_access(self, user_id: int, venue: str) -> tuple[Any, str]:
        """The adapter for this user's secret. Runs on the caller's thread: the secret is read on
        the caller's database connection (pool threads only talk HTTP)."""
        known = _secret_stamps.get()
        if known is None or known[0] != user_id:
            return self._access_from(venue, self._load_secret(user_id=user_id, exchange=venue))
        stamp = known[1].get(venue)
        with self._lock:
            cached = self._access.get((user_id, venue))
        if cached is not None and cached[0] == stamp:
            return cached[1], cached[2]
        adapter, problem = self._access_from(venue, self._load_secret(user_id=user_id, exchange=venue))
        with self._lock:
            self._access[(user_id, venue)] = (stamp, adapter, problem)
        return adapter, problem

    def _venue(
        self,
        venue: str,
        access: tuple[Any, str],
        legs: Sequence[IntentLeg],
        streamed: Mapping[tuple[str, str, str], Streamed],
    ) -> tuple[list[LegValidation], Decimal | None, str]:
        """-> (leg validations, balance or None, why the balance is unknown)."""
        adapter, problem = access
        if adapter is None:
            return [self._failed(leg, REJECTED, problem, None) for leg in legs], None, problem
        results = [self._leg(adapter, leg, streamed) for leg in legs]
        balance = self._balance(adapter)
        if not balance.ok:
            return results, None, f"{venue} balance: {balance.kind.replace('_', ' ')}: {balance.detail}"
        return results, balance.value, ""

    def _balance(self, adapter: Any) -> CallResult[Decimal]:
        """The balance kept for this credential; once half its TTL old, asked again in the
        background (the answer kept meanwhile still serves)."""
        balance = self._cached(adapter, BALANCE_KEY, adapter.balance_usd, self.balances)
        until = self.balances.fresh_until(adapter.venue, BALANCE_KEY, adapter.fingerprint)
        if until is not None and until - self.balances.now() < self.balances.ttl_s / 2:
            key = (adapter.venue, adapter.fingerprint)
            with self._lock:
                if key in self._refreshing:
                    return balance
                self._refreshing.add(key)
            self._pool.submit(self._refresh_balance, adapter, key)
        return balance

    def _refresh_balance(self, adapter: Any, key: tuple[str, str]) -> None:
        try:
            self._call(
                adapter,
                BALANCE_KEY,
                lambda: self.balances.refresh(
                    adapter.venue, BALANCE_KEY, adapter.fingerprint, adapter.balance_usd
                ),
            )
        finally:
            with self._lock:
                self._refreshing.discard(key)

    def _answers_cached(self, venue: str, access: tuple[Any, str], legs: Sequence[IntentLeg]) -> bool:
        """Whether `_venue` would answer from the cache alone (no adapter: nothing to ask)."""
        adapter = access[0]
        if adapter is None:
            return True
        fresh = self.cache.has_fresh
        return self.balances.has_fresh(venue, BALANCE_KEY, adapter.fingerprint) and all(
            fresh(venue, key, adapter.fingerprint) for key in _answer_keys(legs)
        )

    # --- the whole intent --------------------------------------------------------------------------

    def _jobs(self, user_id: int, legs: Sequence[IntentLeg]) -> list[tuple[str, tuple[Any, str], list]]:
        venues = sorted({leg.venue for leg in legs if leg.venue in (KALSHI, POLYMARKET)})
        return [
            (venue, self._venue_access(user_id, venue), [leg for leg in legs if leg.venue == venue])
            for venue in venues
        ]

    def from_cache(
        self, user_id: int, legs: Sequence[IntentLeg], now: datetime | None = None
    ) -> ExchangeValidation | None:
        """The validation when every answer it needs is cached, else None; never calls a venue.
        The engine asks this while it holds the run's lock, where a venue call must not happen.
        The same question within the cached answers' TTL gets the same validation back without
        building it again (unless a venue has since asked us to slow down)."""
        jobs = self._jobs(user_id, legs)
        memo_key = (
            user_id,
            tuple((venue, id(access[0]), access[1]) for venue, access, _ in jobs),
            tuple((leg.venue, leg.instrument_id, leg.side) for leg in legs),
        )
        with self._lock:
            memo = self._memo.get(memo_key)
        if memo is not None and self.cache.now() < memo[0] and not self._backing_off(jobs):
            return memo[1]
        token = _cache_only.set(True)
        try:
            validation = self._validate(user_id, legs, jobs, pool=False)
        except _NotCached:
            return None
        finally:
            _cache_only.reset(token)
        with self._lock:
            if len(self._memo) > 10_000:
                self._memo.clear()
            self._memo[memo_key] = (self._fresh_until(jobs), validation)
        return validation

    def _fresh_until(self, jobs: list[tuple[str, tuple[Any, str], list]]) -> float:
        """When the first of the cached answers a validation was built from goes stale."""
        until = float("inf")
        for venue, (adapter, _), legs in jobs:
            if adapter is None:
                continue
            for key in _answer_keys(legs):
                fresh = self.cache.fresh_until(venue, key, adapter.fingerprint)
                until = min(until, fresh if fresh is not None else float("-inf"))
            balance = self.balances.fresh_until(venue, BALANCE_KEY, adapter.fingerprint)
            until = min(until, balance if balance is not None else float("-inf"))
        return until

    def _backing_off(self, jobs: list[tuple[str, tuple[Any, str], list]]) -> bool:
        """Whether a venue asked us to slow down: `_cached` answers rate_limited then, cache or not."""
        now = self._clock()
        with self._lock:
            return any(
                self._backoff_until.get((venue, adapter.fingerprint), 0.0) > now
                for venue, (adapter, _), _ in jobs
                if adapter is not None
            )

    def validate(
        self, user_id: int, legs: Sequence[IntentLeg], now: datetime | None = None
    ) -> ExchangeValidation:
        return self._validate(user_id, legs, self._jobs(user_id, legs), pool=True)

    __call__ = validate  # an ExchangeValidator is a `Validator`

    def arrival_book(self, user_id: int, venue: str, instrument_id: str, side: str) -> CallResult[Book]:
        """The book an order meets when it arrives: the book live ingest's stream holds now, if
        fresh (ingest.stream_books), else a read-only call made now, never from the validation
        cache (the book seen at validation is what the order must *not* be filled against),
        within the venue's rate limit and any Retry-After it asked for."""
        adapter, problem = self._venue_access(user_id, venue)
        if adapter is None:
            return CallResult(kind=REJECTED, venue=venue, call="orderbook", detail=problem, latency_ms=0.0)
        streamed = _streamed(venue, instrument_id, side)
        if streamed is not None:
            return streamed
        return self._call(adapter, "orderbook", lambda: _side_book(adapter, instrument_id, side))

    def _validate(
        self,
        user_id: int,
        legs: Sequence[IntentLeg],
        jobs: list[tuple[str, tuple[Any, str], list]],
        *,
        pool: bool,
    ) -> ExchangeValidation:
        # The venues are asked concurrently: all but the last in the pool, the last right here.
        # A venue whose answers are all cached is answered here too: a thread hand-off costs
        # more than reading the cache.
        # What the streams vouch for, every leg's in one round trip.
        streamed = fresh_legs(
            [
                (leg.venue, leg.instrument_id, leg.side)
                for _, (adapter, _), legs in jobs
                if adapter
                for leg in legs
            ],
            now_ms=time.time_ns() // 1_000_000,
        )
        pooled = [
            (job[0], self._pool.submit(self._venue, *job, streamed))
            for job in (jobs[:-1] if pool else [])
            if not self._answers_cached(*job)
        ]
        here = [(job[0], self._venue(*job, streamed)) for job in jobs if job[0] not in dict(pooled)]
        answers = [(venue, future.result()) for venue, future in pooled] + here
        by_leg: dict[tuple[str, str, str], LegValidation] = {}
        balances: dict[str, Decimal | None] = {}
        problems: list[str] = []
        for venue, (results, balance, problem) in answers:
            balances[venue] = balance
            if problem:
                problems.append(problem)
            for result in results:
                by_leg[(result.venue, result.instrument_id, result.side)] = result
        ordered = tuple(
            by_leg[key]
            for key in dict.fromkeys((leg.venue, leg.instrument_id, leg.side) for leg in legs)
            if key in by_leg
        )
        ok = bool(ordered) and all(leg.ok for leg in ordered) and not problems
        validation = ExchangeValidation(
            ok=ok, legs=ordered, balances_usd=balances, detail="; ".join(problems)
        )
        if not ok:
            kinds = ",".join(sorted({leg.kind for leg in ordered if not leg.ok})) or "balance"
            logger.info("event=exchange_validation_failed user_id=%s kinds=%s", user_id, kinds)
        return validation


class _NotCached(Exception):
    pass


def _streamed(venue: str, instrument_id: str, side: str) -> CallResult[Book] | None:
    """The book live ingest's stream holds now, if fresh: what the venue would answer, without
    spending a read of its rate limit."""
    book = fresh_book(venue, instrument_id, side, now_ms=time.time_ns() // 1_000_000)
    return None if book is None else CallResult.success(book, venue=venue, call="orderbook", latency_ms=0.0)


def _side_book(adapter: Any, instrument_id: str, side: str) -> CallResult[Book]:
    """One side's book: Kalshi answers both sides of a market in one call, Polymarket a token's."""
    if adapter.venue != KALSHI:
        return adapter.orderbook(instrument_id, side)
    both = adapter.orderbook(instrument_id)
    if not both.ok:
        return both  # type: ignore[return-value]
    return CallResult.success(both.value[side], venue=KALSHI, call="orderbook", latency_ms=both.latency_ms)


def _refuse_to_call() -> CallResult[Any]:
    raise _NotCached


# True while `from_cache` runs on this thread: a cache miss raises `_NotCached`, never calls.
_cache_only: ContextVar[bool] = ContextVar("simulator_validation_cache_only", default=False)

# What the cache keeps an answer under (with the venue and the credential's fingerprint).
BALANCE_KEY = "balance"


def _status_key(leg: IntentLeg) -> str:
    return f"status:{leg.instrument_id}"


def _book_key(leg: IntentLeg) -> str:
    return f"book:{leg.instrument_id}:{leg.side}"


def _answer_keys(legs: Sequence[IntentLeg]) -> list[str]:
    """What `_venue` asks one venue for these legs through the short cache: each market's status
    and book (the balance is kept in a cache of its own)."""
    return [key for leg in legs for key in (_status_key(leg), _book_key(leg))]


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


@functools.cache
def default_validator() -> ExchangeValidator:
    """The process-wide validator: shared cache, shared limiter (Redis when configured)."""
    redis_url = getattr(settings, "REDIS_URL", "")
    limiter = RedisRateLimiter(redis_url) if redis_url else LocalRateLimiter()
    return ExchangeValidator(
        timeout_s=_setting("SIMULATOR_VALIDATION_TIMEOUT_S", DEFAULT_TIMEOUT_S),
        cache=BookCache(ttl_s=_setting("SIMULATOR_BOOK_CACHE_TTL_S", DEFAULT_CACHE_TTL_S)),
        balances=BookCache(ttl_s=_setting("SIMULATOR_BALANCE_TTL_S", DEFAULT_BALANCE_TTL_S)),
        rate_limiter=limiter,
    )


def validate_intent(
    user_id: int, legs: Sequence[IntentLeg], now: datetime | None = None
) -> ExchangeValidation:
    """Validate one intent's legs for one user through the process-wide validator."""
    return default_validator().validate(user_id, legs, now)


def arrival_book(user_id: int, venue: str, instrument_id: str, side: str) -> CallResult[Book]:
    """`ExchangeValidator.arrival_book` through the process-wide validator."""
    return default_validator().arrival_book(user_id, venue, instrument_id, side)


def validate_intent_from_cache(
    user_id: int, legs: Sequence[IntentLeg], now: datetime | None = None
) -> ExchangeValidation | None:
    """`validate_intent` when the process-wide validator has every answer cached, else None."""
    return default_validator().from_cache(user_id, legs, now)
