"""The Kalshi adapter through the official client against the exchange double, every fault typed."""

import threading
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from kalshi_python_sync.exceptions import ApiException

from exchanges.books import NO, YES, Level
from exchanges.double import ExchangeDouble, Fault, KalshiMarket, Scenario
from exchanges.kalshi import (
    KALSHI_DEMO_HOST,
    KALSHI_PROD_HOST,
    KalshiAdapter,
    KalshiCredentials,
    kalshi_credentials_from_secret,
)
from exchanges.ratelimit import KALSHI_READ, BucketSpec, LocalRateLimiter
from exchanges.results import CallResult, kind_for_status, retry_after_seconds, timed_call
from exchanges.testing import kalshi_key_pair, new_kalshi_key_pair

D = Decimal
KEY_ID = "kalshi-test-key"
TICKER = "FED-25DEC-T4.00"
BOOK_PATH = f"/trade-api/v2/markets/{TICKER}/orderbook"
SHORT_TIMEOUT_S = 0.3


@pytest.fixture(scope="module")
def double():
    _, public_pem = kalshi_key_pair()
    with ExchangeDouble(Scenario.demo()) as running:
        running.state.register_kalshi_key(KEY_ID, public_pem, balance_cents=123_456)
        yield running


@pytest.fixture(autouse=True)
def clean_double(double):
    double.clear_faults()
    double.reset_call_counts()
    yield
    double.clear_faults()


@pytest.fixture
def adapter(double):
    private_pem, _ = kalshi_key_pair()
    credentials = KalshiCredentials(api_key_id=KEY_ID, private_key_pem=private_pem, host=double.kalshi_host)
    return KalshiAdapter(credentials, timeout_s=SHORT_TIMEOUT_S)


# --- credentials ------------------------------------------------------------------------------


def test_credentials_choose_prod_demo_or_an_explicit_host(rsa_private_pem):
    secret = {"api_key": "id", "extra": {"private_key": rsa_private_pem}}
    assert kalshi_credentials_from_secret(secret).resolved_host == KALSHI_PROD_HOST
    secret["extra"]["use_demo"] = True
    assert kalshi_credentials_from_secret(secret).resolved_host == KALSHI_DEMO_HOST
    secret["extra"]["host"] = "http://127.0.0.1:9/trade-api/v2/"
    assert kalshi_credentials_from_secret(secret).resolved_host == "http://127.0.0.1:9/trade-api/v2"


def test_credentials_read_the_key_from_a_path(tmp_path, rsa_private_pem):
    key_file = tmp_path / "kalshi.pem"
    key_file.write_text(rsa_private_pem)
    credentials = kalshi_credentials_from_secret(
        {"api_key": "id", "extra": {"private_key_path": str(key_file)}}
    )
    assert credentials.private_key_pem == rsa_private_pem
    assert rsa_private_pem not in repr(credentials)


@pytest.mark.parametrize(
    ("secret", "field"),
    [
        ({"extra": {"private_key": "x"}}, "api_key"),
        ({"api_key": "id", "extra": {}}, "extra.private_key"),
        ({"api_key": "id", "extra": {"private_key_path": "/nonexistent/key.pem"}}, "extra.private_key_path"),
    ],
)
def test_incomplete_secrets_name_the_missing_field(secret, field):
    with pytest.raises(ValueError, match=field):
        kalshi_credentials_from_secret(secret)


# --- calls that succeed -----------------------------------------------------------------------


def test_exchange_status_is_ok(adapter):
    result = adapter.exchange_status()
    assert result.ok, result.detail
    assert result.value.exchange_active and result.value.trading_active
    assert result.venue == "kalshi" and result.call == "exchange_status" and result.latency_ms > 0


def test_orderbook_gives_yes_and_no_books_with_derived_asks(adapter, double):
    double.state.set_kalshi_book(TICKER, [["0.40", "100"], ["0.42", "13.5"]], [["0.55", "20"]])
    result = adapter.orderbook(TICKER)
    assert result.ok, result.detail
    yes, no = result.value[YES], result.value[NO]
    assert yes.best_bid == Level(D("0.42"), D("13.5"))
    assert yes.best_ask == Level(D("0.45"), D("20"))
    assert no.best_ask == Level(D("0.58"), D("13.5"))
    assert yes.received_ts_ms > 0


def test_orderbook_depth_is_passed_and_bounded(adapter, double):
    assert adapter.orderbook(TICKER, depth=1).ok
    assert adapter.orderbook(TICKER, depth=-3).ok  # 0 or negative means all levels
    refused = adapter.orderbook(TICKER, depth=101)
    assert refused.kind == "rejected" and "depth" in refused.detail
    assert double.call_counts[("kalshi", BOOK_PATH)] == 2  # the refused one was never sent


def test_market_status_of_an_active_market(adapter):
    result = adapter.market_status(TICKER)
    assert result.ok, result.detail
    status = result.value
    assert (status.instrument_id, status.venue_status, status.tradeable, status.resolved) == (
        TICKER,
        "active",
        True,
        False,
    )
    assert isinstance(status.close_time, datetime)


@pytest.mark.parametrize(
    ("venue_status", "result_word", "tradeable", "resolved"),
    [
        ("closed", "", False, False),
        ("determined", "yes", False, True),
        ("finalized", "no", False, True),
        ("inactive", "", False, False),
    ],
)
def test_market_status_follows_the_venue_lifecycle(
    adapter, double, venue_status, result_word, tradeable, resolved
):
    ticker = f"LIFE-{venue_status.upper()}"
    double.state.add_kalshi_market(KalshiMarket(ticker=ticker, status=venue_status, result=result_word))
    status = adapter.market_status(ticker).value
    assert status.venue_status == venue_status
    assert (status.tradeable, status.resolved) == (tradeable, resolved)
    assert status.result == (result_word or None)


def test_market_statuses_answers_many_markets_in_one_read(adapter, double):
    double.state.add_kalshi_market(KalshiMarket(ticker="MANY-CLOSED", status="closed"))
    result = adapter.market_statuses([TICKER, "MANY-CLOSED", "MANY-UNKNOWN"])
    assert result.ok, result.detail
    assert {ticker: status.tradeable for ticker, status in result.value.items()} == {
        TICKER: True,
        "MANY-CLOSED": False,
    }  # a ticker the venue does not know is absent
    assert sum(double.call_counts.values()) == 1
    assert adapter.market_statuses([]).kind == "rejected"  # 1 to 100 tickers per call


def test_balance_in_cents_becomes_dollars(adapter, double):
    double.state.set_kalshi_balance(KEY_ID, 98_765)
    result = adapter.balance_usd()
    assert result.ok, result.detail
    assert result.value == D("987.65")


# --- calls that fail: every failure is a typed result -----------------------------------------


def test_unknown_ticker_is_rejected_with_the_venues_words(adapter):
    result = adapter.market_status("NO-SUCH-TICKER")
    assert result.kind == "rejected" and result.http_status == 404
    assert "404" in result.detail and result.value is None


def test_a_key_the_venue_does_not_know_is_rejected(double):
    other_pem, _ = new_kalshi_key_pair()
    stranger = KalshiAdapter(
        KalshiCredentials(api_key_id="unknown-key", private_key_pem=other_pem, host=double.kalshi_host),
        timeout_s=SHORT_TIMEOUT_S,
    )
    result = stranger.balance_usd()
    assert result.kind == "rejected" and result.http_status == 401
    assert other_pem not in result.detail


def test_an_unusable_private_key_is_rejected_without_a_request(double):
    broken = KalshiAdapter(
        KalshiCredentials(api_key_id=KEY_ID, private_key_pem="not a pem", host=double.kalshi_host)
    )
    result = broken.orderbook(TICKER)
    assert result.kind == "rejected" and "private key" in result.detail
    assert sum(double.call_counts.values()) == 0


@pytest.mark.parametrize(
    ("fault", "kind", "status"),
    [
        (Fault(venue="kalshi", kind="status", status=503), "unreachable", 503),
        (Fault(venue="kalshi", kind="status", status=500), "unreachable", 500),
        (Fault(venue="kalshi", kind="status", status=403), "rejected", 403),
        (Fault(venue="kalshi", kind="status", status=400), "rejected", 400),
        (Fault(venue="kalshi", kind="bad_signature"), "rejected", 401),
        (Fault(venue="kalshi", kind="malformed", malformed="not_json"), "malformed", None),
        (Fault(venue="kalshi", kind="malformed", malformed="missing_fields"), "malformed", None),
        (
            Fault(venue="kalshi", kind="malformed", malformed="missing_fields", drop_fields=("no_dollars",)),
            "malformed",
            None,
        ),
    ],
    ids=lambda v: getattr(v, "kind", None) and f"{v.kind}-{v.status}-{v.malformed}-{'+'.join(v.drop_fields)}",
)
def test_orderbook_faults_become_typed_results(adapter, double, fault, kind, status):
    double.add_fault(fault)
    result = adapter.orderbook(TICKER)
    assert result.kind == kind, result.detail
    assert result.http_status == status
    assert result.value is None and result.detail


@pytest.mark.parametrize("call", ["exchange_status", "market_status", "orderbook", "balance_usd"])
def test_every_call_reports_a_rate_limit_with_retry_after(adapter, double, call):
    double.add_fault(Fault(venue="kalshi", kind="rate_limit", retry_after_s=7))
    args = () if call in ("exchange_status", "balance_usd") else (TICKER,)
    result = getattr(adapter, call)(*args)
    assert result.kind == "rate_limited" and result.http_status == 429
    assert result.retry_after_s == 7.0


def test_a_slow_answer_within_the_timeout_is_ok(adapter, double):
    double.add_fault(Fault(venue="kalshi", kind="latency", latency_s=0.05, path_prefix=BOOK_PATH))
    assert adapter.orderbook(TICKER).ok


def test_a_hung_venue_is_unreachable_after_the_timeout(adapter, double):
    double.add_fault(Fault(venue="kalshi", kind="timeout", hold_s=5, path_prefix=BOOK_PATH))
    result = adapter.orderbook(TICKER)  # returns: the timeout is ours, not the venue's
    assert result.kind == "unreachable" and result.http_status is None
    assert "Timeout" in result.detail or "timed out" in result.detail
    assert double.call_counts[("kalshi", BOOK_PATH)] == 1  # retries=0: no second attempt
    print(f"hung call returned after {result.latency_ms:.0f} ms (timeout {SHORT_TIMEOUT_S * 1000:.0f} ms)")


def test_a_closed_port_is_unreachable():
    private_pem, _ = kalshi_key_pair()
    with ExchangeDouble(Scenario()) as gone:
        host = gone.kalshi_host
    adapter = KalshiAdapter(
        KalshiCredentials(api_key_id=KEY_ID, private_key_pem=private_pem, host=host),
        timeout_s=SHORT_TIMEOUT_S,
    )
    result = adapter.exchange_status()
    assert result.kind == "unreachable"


# --- the rate limiter in front of the double --------------------------------------------------


def test_the_limiter_holds_the_rate_the_double_sees(adapter, double):
    now = [0.0]
    limiter = LocalRateLimiter(
        {KALSHI_READ: BucketSpec(rate_per_s=20, burst=5)}, clock=lambda: now[0], max_wait_s=0.001
    )
    adapter.rate_limiter = limiter
    kinds = [adapter.orderbook(TICKER).kind for _ in range(30)]
    assert kinds == ["ok"] * 5 + ["rate_limited"] * 25  # the burst, then refusals: no time passed
    now[0] += 0.2  # 0.2 s at 20/s refills 4 tokens
    kinds = [adapter.orderbook(TICKER).kind for _ in range(30)]
    assert kinds.count("ok") == 4
    now[0] += 60  # a long pause refills only up to the burst
    kinds = [adapter.orderbook(TICKER).kind for _ in range(30)]
    assert kinds.count("ok") == 5
    assert double.call_counts[("kalshi", BOOK_PATH)] == 14


def test_threads_sharing_a_limiter_hold_the_rate_at_the_double(double):
    private_pem, _ = kalshi_key_pair()
    spec = BucketSpec(rate_per_s=20, burst=5)
    limiter = LocalRateLimiter({KALSHI_READ: spec}, max_wait_s=0.5)
    credentials = KalshiCredentials(api_key_id=KEY_ID, private_key_pem=private_pem, host=double.kalshi_host)
    adapters = [KalshiAdapter(credentials, rate_limiter=limiter) for _ in range(6)]
    started = time.monotonic()
    stop_at = started + 1.0

    def hammer(one: KalshiAdapter) -> None:
        while time.monotonic() < stop_at:
            one.orderbook(TICKER)

    threads = [threading.Thread(target=hammer, args=(one,)) for one in adapters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed_s = time.monotonic() - started
    sent = double.call_counts[("kalshi", BOOK_PATH)]
    assert sent <= spec.burst + spec.rate_per_s * elapsed_s + 1
    assert sent >= spec.rate_per_s * 0.5


def test_a_waiting_limiter_lets_every_call_through_at_the_rate(adapter, double):
    now, slept = [0.0], []

    def sleep(seconds: float) -> None:  # the injected clock moves only when the limiter waits
        slept.append(seconds)
        now[0] += seconds

    adapter.rate_limiter = LocalRateLimiter(
        {KALSHI_READ: BucketSpec(rate_per_s=20, burst=3)}, clock=lambda: now[0], sleep=sleep
    )
    results = [adapter.orderbook(TICKER) for _ in range(6)]
    assert all(r.ok for r in results)
    assert double.call_counts[("kalshi", BOOK_PATH)] == 6
    assert slept == pytest.approx([0.05, 0.05, 0.05])  # beyond the burst, one slot per 1/20 s


# --- typed results from raw exceptions (exchanges.results) ------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (None, "unreachable"),
        (0, "unreachable"),
        (503, "unreachable"),
        (429, "rate_limited"),
        (401, "rejected"),
        (404, "rejected"),
        (422, "rejected"),
        (201, "malformed"),
        (302, "malformed"),
    ],
)
def test_http_status_maps_to_a_kind(status, kind):
    assert kind_for_status(status) == kind


def test_retry_after_accepts_seconds_and_http_dates():
    now = datetime(2025, 11, 24, 12, 0, 0, tzinfo=UTC)
    assert retry_after_seconds({"Retry-After": "2"}) == 2.0
    assert retry_after_seconds({"retry-after": "Mon, 24 Nov 2025 12:00:03 GMT"}, now=now) == 3.0
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None


def test_a_429_exception_carries_its_retry_after_into_the_result():
    exc = ApiException(status=429, reason="Too Many Requests")
    exc.headers = {"Retry-After": "3"}
    result = CallResult.from_exception(exc, venue="kalshi", call="orderbook", latency_ms=1.5)
    assert (result.kind, result.retry_after_s, result.http_status, result.latency_ms) == (
        "rate_limited",
        3.0,
        429,
        1.5,
    )


def test_an_unexpected_exception_is_malformed_and_named():
    result = timed_call(lambda: (_ for _ in ()).throw(LookupError("odd")), venue="kalshi", call="orderbook")
    assert result.kind == "malformed" and "LookupError" in result.detail


def test_a_connect_error_is_unreachable_and_a_key_error_is_malformed():
    refused = CallResult.from_exception(ConnectionRefusedError("refused"), venue="kalshi", call="balance")
    missing = CallResult.from_exception(KeyError("orderbook_fp"), venue="kalshi", call="orderbook")
    assert (refused.kind, missing.kind) == ("unreachable", "malformed")


def test_the_detail_never_carries_a_registered_secret(polymarket_private_key):
    exc = ApiException(status=400, reason="Bad Request", body=f"echo {polymarket_private_key}")
    result = CallResult.from_exception(exc, venue="kalshi", call="orderbook")
    assert polymarket_private_key not in result.detail and "400" in result.detail


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind"):
        CallResult(kind="meh", venue="kalshi", call="orderbook")
