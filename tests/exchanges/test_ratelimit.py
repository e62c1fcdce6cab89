"""Token buckets (in-process and Redis) and the shared book cache."""

import shutil
import threading
import time

import pytest

from exchanges.ratelimit import (
    DEFAULT_LIMITS,
    KALSHI_READ,
    POLYMARKET_BALANCE,
    POLYMARKET_BOOK,
    BookCache,
    BucketSpec,
    LocalRateLimiter,
    RedisRateLimiter,
    credential_fingerprint,
    reserve,
)
from exchanges.results import CallResult, RateLimitWaitExceeded


class FakeClock:
    """A clock that advances only when the limiter sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_published_read_limits_are_the_defaults():
    assert DEFAULT_LIMITS[KALSHI_READ].rate_per_s == 20
    assert DEFAULT_LIMITS[POLYMARKET_BOOK].rate_per_s == 150  # 1,500 per 10 s
    assert DEFAULT_LIMITS[POLYMARKET_BALANCE].rate_per_s == 20  # 200 per 10 s


def test_reserve_refills_at_the_rate_and_caps_at_the_burst():
    spec = BucketSpec(rate_per_s=10, burst=5)
    assert reserve(0, 0, 0.3, spec, 1) == pytest.approx((2.0, 0.0))
    assert reserve(5, 0, 100, spec, 1) == pytest.approx((4.0, 0.0))  # never above the burst
    after, wait = reserve(0, 0, 0, spec, 1)
    assert after == pytest.approx(-1) and wait == pytest.approx(0.1)


def test_burst_is_free_then_calls_are_spaced_at_the_rate():
    clock = FakeClock()
    limiter = LocalRateLimiter({"v": BucketSpec(rate_per_s=20, burst=20)}, clock=clock, sleep=clock.sleep)
    waits = [limiter.acquire("v") for _ in range(40)]
    assert waits[:20] == [0.0] * 20
    assert all(w == pytest.approx(0.05) for w in waits[20:])
    assert clock.now - 100.0 == pytest.approx(1.0)  # 20 beyond the burst take one second at 20/s


def test_cost_takes_several_tokens():
    clock = FakeClock()
    limiter = LocalRateLimiter({"v": BucketSpec(rate_per_s=10, burst=10)}, clock=clock, sleep=clock.sleep)
    assert limiter.acquire("v", cost=10) == 0.0
    assert limiter.acquire("v", cost=5) == pytest.approx(0.5)


def test_a_wait_beyond_the_bound_is_refused_without_reserving():
    clock = FakeClock()
    limiter = LocalRateLimiter(
        {"v": BucketSpec(rate_per_s=1, burst=1)}, clock=clock, sleep=clock.sleep, max_wait_s=0.5
    )
    limiter.acquire("v")
    with pytest.raises(RateLimitWaitExceeded) as refused:
        limiter.acquire("v")
    assert refused.value.retry_after_s == pytest.approx(1.0)
    assert clock.slept == []
    clock.now += 1.0
    assert limiter.acquire("v") == 0.0  # the refusal did not push the next caller back


def test_buckets_are_independent_and_unknown_buckets_are_an_error():
    clock = FakeClock()
    limiter = LocalRateLimiter(clock=clock, sleep=clock.sleep)
    for _ in range(20):
        limiter.acquire(KALSHI_READ)
    assert limiter.acquire(POLYMARKET_BOOK) == 0.0
    with pytest.raises(ValueError, match="no rate limit"):
        limiter.acquire("nyse")
    with pytest.raises(ValueError, match="exceeds the burst"):
        limiter.acquire(KALSHI_READ, cost=21)


def hammer(limiter, bucket: str, threads: int, window_s: float) -> int:
    """N threads acquire as fast as they can for a fixed wall window; count the grants."""
    stop_at = time.monotonic() + window_s
    counts = [0] * threads

    def work(index: int) -> None:
        while True:
            try:
                limiter.acquire(bucket)
            except RateLimitWaitExceeded:
                continue
            if time.monotonic() >= stop_at:
                return
            counts[index] += 1

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts)


def test_threads_hammering_the_local_limiter_hold_the_rate():
    spec = BucketSpec(rate_per_s=50, burst=10)
    limiter = LocalRateLimiter({"v": spec}, max_wait_s=0.5)
    window_s = 1.0
    granted = hammer(limiter, "v", threads=16, window_s=window_s)
    assert granted <= spec.burst + spec.rate_per_s * window_s + 1
    assert granted >= spec.rate_per_s * window_s * 0.5  # it did let the rate through


def test_credential_fingerprint_is_stable_and_not_the_secret():
    fp = credential_fingerprint("kalshi", "key-id", "PEM")
    assert fp == credential_fingerprint("kalshi", "key-id", "PEM")
    assert fp != credential_fingerprint("kalshi", "key-id", "OTHER")
    assert "PEM" not in fp and len(fp) == 16


def ok_result(value):
    return CallResult.success(value, venue="kalshi", call="orderbook")


def test_book_cache_shares_one_call_within_the_ttl():
    clock = FakeClock()
    cache = BookCache(ttl_s=0.25, clock=clock)
    calls = []

    def fetch():
        calls.append(1)
        return ok_result(len(calls))

    first = cache.get_or_fetch("kalshi", "T1", "fp", fetch)
    clock.now += 0.2
    second = cache.get_or_fetch("kalshi", "T1", "fp", fetch)
    assert first is second and len(calls) == 1
    clock.now += 0.1
    assert cache.get_or_fetch("kalshi", "T1", "fp", fetch).value == 2


def test_book_cache_keeps_credentials_and_instruments_apart():
    cache = BookCache(ttl_s=10, clock=FakeClock())
    values = iter(range(10))

    def fetch():
        return ok_result(next(values))

    a = cache.get_or_fetch("kalshi", "T1", "user-a", fetch)
    b = cache.get_or_fetch("kalshi", "T1", "user-b", fetch)
    c = cache.get_or_fetch("kalshi", "T2", "user-a", fetch)
    d = cache.get_or_fetch("polymarket", "T1", "user-a", fetch)
    assert len({a.value, b.value, c.value, d.value}) == 4


def test_book_cache_does_not_keep_failures():
    cache = BookCache(ttl_s=10, clock=FakeClock())
    failed = CallResult(kind="unreachable", venue="kalshi", call="orderbook")
    assert cache.get_or_fetch("kalshi", "T1", "fp", lambda: failed) is failed
    assert cache.get_or_fetch("kalshi", "T1", "fp", lambda: ok_result(1)).value == 1


def test_concurrent_callers_for_one_book_share_the_call_in_flight():
    cache = BookCache(ttl_s=5)
    release = threading.Event()
    calls = []

    def slow_fetch():
        calls.append(1)
        release.wait(5)
        return ok_result("book")

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get_or_fetch("kalshi", "T1", "fp", slow_fetch)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    release.set()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert [r.value for r in results] == ["book"] * 8


# Redis: a real redis-server started by pytest-redis (redis_proc), one db per test (redisdb).
needs_redis_server = pytest.mark.skipif(
    shutil.which("redis-server") is None,
    reason="redis-server executable not found: install it (the project's test command does) "
    "to run the shared Redis rate-limiter tests",
)


@needs_redis_server
def test_redis_limiter_grants_the_burst_then_makes_callers_wait(redisdb):
    slept = []
    limiter = RedisRateLimiter(redisdb, {"v": BucketSpec(rate_per_s=10, burst=5)}, sleep=slept.append)
    waits = [limiter.acquire("v") for _ in range(7)]
    assert waits[:5] == [0.0] * 5
    assert 0.05 < waits[5] <= 0.1 + 1e-6
    assert waits[6] > waits[5]
    assert redisdb.exists(limiter.key("v"))
    assert redisdb.pttl(limiter.key("v")) > 0  # idle buckets expire


@needs_redis_server
def test_redis_limiter_refuses_beyond_the_bound_without_reserving(redisdb):
    limiter = RedisRateLimiter(
        redisdb, {"v": BucketSpec(rate_per_s=1, burst=1)}, max_wait_s=0.2, sleep=lambda s: None
    )
    limiter.acquire("v")
    with pytest.raises(RateLimitWaitExceeded) as refused:
        limiter.acquire("v")
    assert 0.5 < refused.value.retry_after_s <= 1.0
    with pytest.raises(RateLimitWaitExceeded) as again:
        limiter.acquire("v")
    assert again.value.retry_after_s <= refused.value.retry_after_s  # nothing was reserved


@needs_redis_server
def test_redis_limiter_accepts_a_url(redis_proc, redisdb):
    limiter = RedisRateLimiter(f"redis://{redis_proc.host}:{redis_proc.port}/0")
    assert limiter.acquire(KALSHI_READ) == 0.0


@needs_redis_server
def test_limiters_in_several_threads_sharing_redis_hold_one_rate(redisdb):
    spec = BucketSpec(rate_per_s=50, burst=10)
    # One limiter object per thread: as separate worker processes would each have their own.
    limiters = [RedisRateLimiter(redisdb, {"v": spec}, max_wait_s=0.5) for _ in range(8)]

    class RoundRobin:
        def __init__(self) -> None:
            self.local = threading.local()
            self.next = iter(limiters)
            self.lock = threading.Lock()

        def acquire(self, bucket, cost=1):
            if not hasattr(self.local, "limiter"):
                with self.lock:
                    self.local.limiter = next(self.next)
            return self.local.limiter.acquire(bucket, cost)

    window_s = 1.0
    granted = hammer(RoundRobin(), "v", threads=8, window_s=window_s)
    assert granted <= spec.burst + spec.rate_per_s * window_s + 1
    assert granted >= spec.rate_per_s * window_s * 0.5
