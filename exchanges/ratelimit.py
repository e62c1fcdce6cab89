"""Token buckets at the venues' published READ limits, plus a short-lived shared book cache.

Limits (exchange-apis.md section 4):
- Kalshi Basic tier: 20 reads/s, one bucket for every read call (status, market, book, balance).
- Polymarket (Cloudflare, 10 s sliding windows): /book 1,500/10 s -> 150/s; /books (the batch
  call, one request whatever its size) 500/10 s -> 50/s; GET balance-allowance 200/10 s -> 20/s; tick size 200/10 s -> 20/s (we also put neg-risk and
  fee-rate there); API-key endpoints 100/10 s -> 10/s.

The burst is one second's worth, not the whole 10 s window: a token bucket refilled at r/s with
burst b admits at most b + r*w in any window w, so a 10 s-sized burst could double the venue's
window count.

`acquire(bucket, cost)` reserves tokens and sleeps until they are due. The reservation is
atomic (a lock in-process, a Lua script in Redis) and the sleep happens outside it, so waiters
queue in arrival order. If the wait would exceed `max_wait_s` nothing is reserved and
`RateLimitWaitExceeded` is raised; the adapters turn it into a ``rate_limited`` CallResult.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exchanges.results import CallResult, RateLimitWaitExceeded

if TYPE_CHECKING:
    import redis

logger = logging.getLogger(__name__)
KALSHI_READ = "kalshi"
POLYMARKET_BOOK = "polymarket"
POLYMARKET_BOOKS = "polymarket.books"
POLYMARKET_BALANCE = "polymarket.balance"
POLYMARKET_TICK_SIZE = "polymarket.tick_size"
POLYMARKET_AUTH = "polymarket.auth"


@dataclass(frozen=True, slots=True)
class BucketSpec:
    rate_per_s: float
    burst: float

    def __post_init__(self) -> None:
        if self.rate_per_s <= 0 or self.burst <= 0:
            raise ValueError("rate_per_s and burst must be positive")


DEFAULT_LIMITS: dict[str, BucketSpec] = {
    KALSHI_READ: BucketSpec(rate_per_s=20, burst=20),
    POLYMARKET_BOOK: BucketSpec(rate_per_s=150, burst=150),
    POLYMARKET_BOOKS: BucketSpec(rate_per_s=50, burst=50),
    POLYMARKET_BALANCE: BucketSpec(rate_per_s=20, burst=20),
    POLYMARKET_TICK_SIZE: BucketSpec(rate_per_s=20, burst=20),
    POLYMARKET_AUTH: BucketSpec(rate_per_s=10, burst=10),
}
DEFAULT_MAX_WAIT_S = 2.0


def reserve(tokens: float, last_s: float, now_s: float, spec: BucketSpec, cost: float) -> tuple[float, float]:
    """Pure bucket step: refill since `last_s`, take `cost` -> (tokens_after, wait_s).

    `tokens_after` may be negative: that is a reservation the caller honours by waiting.
    """
    refilled = min(spec.burst, tokens + max(0.0, now_s - last_s) * spec.rate_per_s)
    after = refilled - cost
    wait_s = -after / spec.rate_per_s if after < 0 else 0.0
    return after, wait_s


class _Limiter:
    def __init__(
        self,
        limits: dict[str, BucketSpec] | None,
        max_wait_s: float,
        sleep: Callable[[float], None],
    ) -> None:
        self.limits = dict(DEFAULT_LIMITS if limits is None else limits)
        self.max_wait_s = max_wait_s
        self._sleep = sleep

    def spec(self, bucket: str) -> BucketSpec:
        try:
            return self.limits[bucket]
        except KeyError:
            raise ValueError(f"no rate limit configured for bucket {bucket!r}") from None

    def acquire(self, bucket: str, cost: float = 1) -> float:
        """Block until `cost` tokens of `bucket` are ours; return the seconds waited."""
        spec = self.spec(bucket)
        if cost > spec.burst:
            raise ValueError(f"cost {cost} exceeds the burst {spec.burst} of {bucket!r}")
        wait_s = self._reserve(bucket, spec, cost)
        if wait_s > 0:
            self._sleep(wait_s)
        return wait_s

    def _reserve(self, bucket: str, spec: BucketSpec, cost: float) -> float:
        raise NotImplementedError


class LocalRateLimiter(_Limiter):
    """In-process buckets guarded by one lock: for a single worker process (and for tests)."""

    def __init__(
        self,
        limits: dict[str, BucketSpec] | None = None,
        *,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(limits, max_wait_s, sleep)
        self._clock = clock
        self._lock = threading.Lock()
        self._state: dict[str, tuple[float, float]] = {}

    def _reserve(self, bucket: str, spec: BucketSpec, cost: float) -> float:
        with self._lock:
            now = self._clock()
            tokens, last = self._state.get(bucket, (spec.burst, now))
            after, wait_s = reserve(tokens, last, now, spec, cost)
            if wait_s > self.max_wait_s:
                raise RateLimitWaitExceeded(bucket, wait_s)
            self._state[bucket] = (after, now)
            return wait_s


# Server time (TIME) keeps every process on one clock; the values travel as strings because
# Redis truncates Lua numbers to integers in replies. Nothing is written when the wait is too
# long, so a refused caller does not push later callers back.
_RESERVE_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local last = tonumber(state[2]) or now
local elapsed = now - last
if elapsed < 0 then elapsed = 0 end
tokens = math.min(burst, tokens + elapsed * rate)
local after = tokens - cost
local wait = 0
if after < 0 then wait = -after / rate end
if wait > max_wait then
  return {0, tostring(wait)}
end
redis.call('HSET', KEYS[1], 'tokens', tostring(after), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst / rate + max_wait) * 1000) + 1000)
return {1, tostring(wait)}
"""


class RedisRateLimiter(_Limiter):
    """Buckets shared by every process and machine that uses the same Redis (one key per bucket)."""

    def __init__(
        self,
        client: redis.Redis | str,
        limits: dict[str, BucketSpec] | None = None,
        *,
        max_wait_s: float = DEFAULT_MAX_WAIT_S,
        key_prefix: str = "arbsim:ratelimit:",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(limits, max_wait_s, sleep)
        if isinstance(client, str):
            import redis as redis_lib  # only deployments with Redis need the package loaded

            # Short socket timeouts: a Redis outage must not stall a decision for long.
            client = redis_lib.Redis.from_url(client, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._redis = client
        self._key_prefix = key_prefix
        self._script: Any = client.register_script(_RESERVE_LUA)
        # While Redis is unreachable each process keeps its own buckets: trading goes on at the
        # venues' rates per process (possibly N x the shared rate for N processes, for the outage
        # only) rather than every decision failing on the limiter.
        self._fallback = LocalRateLimiter(limits, max_wait_s=max_wait_s, sleep=sleep)
        self._redis_down = False

    def key(self, bucket: str) -> str:
        return f"{self._key_prefix}{bucket}"

    def _reserve(self, bucket: str, spec: BucketSpec, cost: float) -> float:
        import redis as redis_lib

        try:
            granted, wait = self._script(
                keys=[self.key(bucket)],
                args=[repr(spec.rate_per_s), repr(spec.burst), repr(float(cost)), repr(self.max_wait_s)],
            )
        except redis_lib.RedisError as error:
            if not self._redis_down:
                logger.warning(
                    "event=ratelimit_redis_unavailable fallback=local error=%s", type(error).__name__
                )
                self._redis_down = True
            return self._fallback._reserve(bucket, spec, cost)
        if self._redis_down:
            logger.info("event=ratelimit_redis_back")
            self._redis_down = False
        wait_s = float(wait)
        if not int(granted):
            raise RateLimitWaitExceeded(bucket, wait_s)
        return wait_s


def credential_fingerprint(*secret_parts: str) -> str:
    """A short stable id for a credential (sha256 prefix): a cache key that is not the secret."""
    digest = hashlib.sha256("\x00".join(secret_parts).encode("utf-8")).hexdigest()
    return digest[:16]


class BookCache:
    """Share one book call among callers asking for the same book within `ttl_s`.

    Keyed by (venue, instrument, credential fingerprint), so two users never share an answer
    fetched with the other's keys. Concurrent callers for one key wait for the single call in
    flight. Only ok results are kept; a failure is returned to the callers waiting on it, and
    the next caller tries again.
    """

    def __init__(self, ttl_s: float = 0.25, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[Hashable, tuple[float, CallResult[Any]]] = {}
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self.fetches = 0
        self.hits = 0

    def get_or_fetch[T](
        self,
        venue: str,
        instrument: str,
        fingerprint: str,
        fetch: Callable[[], CallResult[T]],
    ) -> CallResult[T]:
        key = (venue, instrument, fingerprint)
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None and self._clock() - entry[0] < self.ttl_s:
                    self.hits += 1
                    return entry[1]
            result = fetch()
            with self._lock:
                self.fetches += 1
                if result.ok:
                    self._entries[key] = (self._clock(), result)
                self._evict_expired()
            return result

    def refresh[T](
        self, venue: str, instrument: str, fingerprint: str, fetch: Callable[[], CallResult[T]]
    ) -> CallResult[T]:
        """Ask again now, whatever is kept; an ok answer replaces it (a failure keeps it). Callers
        meanwhile are answered from what is kept, without waiting for this call."""
        result = fetch()
        with self._lock:
            self.fetches += 1
            if result.ok:
                self._entries[(venue, instrument, fingerprint)] = (self._clock(), result)
        return result

    def fresh_until(self, venue: str, instrument: str, fingerprint: str) -> float | None:
        """Until when (on this cache's clock) the kept answer stays fresh; None if none is kept."""
        with self._lock:
            entry = self._entries.get((venue, instrument, fingerprint))
        return None if entry is None else entry[0] + self.ttl_s

    def now(self) -> float:
        return self._clock()

    def has_fresh(self, venue: str, instrument: str, fingerprint: str) -> bool:
        """Whether `get_or_fetch` would answer this key from the cache right now (no call)."""
        until = self.fresh_until(venue, instrument, fingerprint)
        return until is not None and self._clock() < until

    def _evict_expired(self) -> None:
        now = self._clock()
        for key in [k for k, (at, _) in self._entries.items() if now - at >= self.ttl_s]:
            del self._entries[key]
            lock = self._key_locks.get(key)
            if lock is not None and not lock.locked():  # keep a lock a caller holds right now
                del self._key_locks[key]
