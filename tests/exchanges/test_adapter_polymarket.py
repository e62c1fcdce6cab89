"""The Polymarket adapter through py_clob_client against the exchange double, every fault typed."""

import threading
import time
from decimal import Decimal

import httpx
import pytest
from py_clob_client.http_helpers import helpers as clob_http

from exchanges.books import NO, YES, Level
from exchanges.double import ExchangeDouble, Fault, PolymarketBook, Scenario
from exchanges.polymarket import (
    DEFAULT_TIMEOUT_S,
    POLYMARKET_PROD_HOST,
    PolymarketAdapter,
    PolymarketCredentials,
    install_transport,
    polymarket_credentials_from_secret,
)
from exchanges.ratelimit import POLYMARKET_BOOK, BucketSpec, LocalRateLimiter
from exchanges.testing import polymarket_address, polymarket_private_key

D = Decimal
TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
SHORT_TIMEOUT_S = 0.3


@pytest.fixture(scope="module")
def double():
    with ExchangeDouble(Scenario.demo()) as running:
        yield running


@pytest.fixture(autouse=True)
def clean_double(double):
    double.clear_faults()
    double.reset_call_counts()
    yield
    double.clear_faults()


@pytest.fixture
def adapter(double):
    credentials = PolymarketCredentials(private_key=polymarket_private_key(), host=double.polymarket_host)
    return PolymarketAdapter(credentials, timeout_s=SHORT_TIMEOUT_S)


def sent(double, path: str) -> int:
    return double.call_counts[("polymarket", path)]


# --- credentials and transport ----------------------------------------------------------------


def test_credentials_default_to_prod_and_take_funder_and_host(polymarket_private_key):
    credentials = polymarket_credentials_from_secret({"extra": {"private_key": polymarket_private_key}})
    assert credentials.resolved_host == POLYMARKET_PROD_HOST and credentials.funder is None
    credentials = polymarket_credentials_from_secret(
        {"extra": {"private_key": polymarket_private_key, "funder": "0xabc", "host": "http://127.0.0.1:9/"}}
    )
    assert credentials.resolved_host == "http://127.0.0.1:9" and credentials.funder == "0xabc"
    assert polymarket_private_key not in repr(credentials)


def test_a_secret_without_a_key_names_the_field():
    with pytest.raises(ValueError, match=r"extra\.private_key"):
        polymarket_credentials_from_secret({"extra": {"funder": "0xabc"}})


def test_the_clients_global_http_client_has_an_explicit_timeout():
    client = clob_http._http_client
    assert client.timeout == httpx.Timeout(DEFAULT_TIMEOUT_S)
    assert install_transport() is client  # installed once; importing again changes nothing


# --- calls that succeed -----------------------------------------------------------------------


def test_orderbook_is_re_sorted_best_first_with_the_venue_stamp(adapter, double):
    double.state.set_polymarket_book(
        TOKEN,
        bids=[["0.48", "120"], ["0.49", "50.5"]],
        asks=[["0.53", "30"], ["0.52", "75"]],
        timestamp_ms=1_730_000_000_123,
    )
    result = adapter.orderbook(TOKEN, YES)
    assert result.ok, result.detail
    book = result.value
    assert book.side == YES and book.instrument_id == TOKEN
    assert book.bids == (Level(D("0.49"), D("50.5")), Level(D("0.48"), D("120")))
    assert book.asks == (Level(D("0.52"), D("75")), Level(D("0.53"), D("30")))
    assert book.venue_ts_ms == 1_730_000_000_123
    assert book.extra["tick_size"] == "0.01" and book.extra["neg_risk"] is False
    assert book.extra["min_order_size"] == "5"


def test_orderbook_refuses_an_unknown_side_without_a_request(adapter, double):
    result = adapter.orderbook(TOKEN, "maybe")
    assert result.kind == "rejected" and sent(double, "/book") == 0


def test_a_token_with_a_book_is_tradeable(adapter):
    status = adapter.market_status(TOKEN)
    assert status.ok and status.value.tradeable and status.value.venue_status == "active"


def test_a_closed_market_has_no_book_and_is_not_tradeable(adapter, double):
    token = "closed-token"
    double.state.add_polymarket_book(PolymarketBook(token_id=token, closed=True))
    status = adapter.market_status(token)
    assert status.ok, status.detail
    assert (status.value.tradeable, status.value.venue_status, status.value.resolved) == (
        False,
        "closed",
        False,
    )
    book = adapter.orderbook(token, NO)
    assert book.kind == "rejected" and book.http_status == 404
    assert "No orderbook exists" in book.detail


def test_a_market_is_followed_to_its_winning_token_through_get_markets(adapter, double):
    condition = "0x" + "d4" * 32
    for token, outcome in (("won-token", "Yes"), ("lost-token", "No")):
        double.state.add_polymarket_book(PolymarketBook(token_id=token, market=condition, outcome=outcome))
    trading = adapter.market_resolution(condition)
    assert trading.ok, trading.detail
    assert (trading.value.venue_status, trading.value.resolved, trading.value.winning_instrument_id) == (
        "active",
        False,
        None,
    )
    assert adapter.condition_id("won-token").value == condition
    double.state.set_polymarket_resolved("won-token")
    resolved = adapter.market_resolution(condition).value
    assert (resolved.venue_status, resolved.tradeable, resolved.winning_instrument_id) == (
        "resolved",
        False,
        "won-token",
    )
    unknown = adapter.market_resolution("0x" + "00" * 32)
    assert unknown.kind == "rejected" and unknown.http_status == 404


def test_tick_size_neg_risk_and_fee_rate(adapter, double):
    double.state.add_polymarket_book(
        PolymarketBook(token_id="meta-token", tick_size="0.001", neg_risk=True, base_fee=1000)
    )
    assert adapter.tick_size("meta-token").value == D("0.001")
    assert adapter.neg_risk("meta-token").value is True
    assert adapter.fee_rate_bps("meta-token").value == 1000
    assert adapter.fee_rate_bps(TOKEN).value == 0


def test_balance_in_base_units_becomes_dollars_and_creds_are_derived_once(adapter, double):
    address = polymarket_address(polymarket_private_key())
    double.state.set_polymarket_balance(address, 1_234_567_890)
    first = adapter.balance_usd()
    assert first.ok, first.detail
    assert first.value == D("1234.56789")
    assert adapter.balance_usd().value == D("1234.56789")
    assert sent(double, "/auth/api-key") == 1  # cached on the adapter after the first call
    assert sent(double, "/balance-allowance") == 2


def test_balance_re_derives_creds_after_a_401(adapter, double):
    assert adapter.balance_usd().ok
    double.add_fault(
        Fault(venue="polymarket", kind="bad_signature", path_prefix="/balance-allowance", times=1)
    )
    refused = adapter.balance_usd()
    assert refused.kind == "rejected" and refused.http_status == 401
    assert adapter.balance_usd().ok
    assert sent(double, "/auth/api-key") == 2


# --- calls that fail --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "kind", "status"),
    [
        (Fault(venue="polymarket", kind="status", status=503), "unreachable", 503),
        (Fault(venue="polymarket", kind="status", status=502), "unreachable", 502),
        (Fault(venue="polymarket", kind="status", status=400), "rejected", 400),
        (Fault(venue="polymarket", kind="status", status=201), "malformed", 201),
        (Fault(venue="polymarket", kind="bad_signature"), "rejected", 401),
        (Fault(venue="polymarket", kind="malformed", malformed="not_json"), "malformed", None),
        (Fault(venue="polymarket", kind="malformed", malformed="missing_fields"), "malformed", None),
        (
            Fault(
                venue="polymarket",
                kind="malformed",
                malformed="missing_fields",
                drop_fields=("last_trade_price",),
            ),
            "malformed",
            None,
        ),
    ],
    ids=lambda v: getattr(v, "kind", None) and f"{v.kind}-{v.status}-{v.malformed}-{'+'.join(v.drop_fields)}",
)
def test_orderbook_faults_become_typed_results(adapter, double, fault, kind, status):
    double.add_fault(fault)
    result = adapter.orderbook(TOKEN, YES)
    assert result.kind == kind, result.detail
    assert result.http_status == status
    assert result.value is None and result.detail


@pytest.mark.parametrize(
    ("call", "path"),
    [
        ("orderbook", "/book"),
        ("market_status", "/book"),
        ("tick_size", "/tick-size"),
        ("neg_risk", "/neg-risk"),
        ("fee_rate_bps", "/fee-rate"),
        ("balance_usd", "/balance-allowance"),
    ],
)
def test_every_call_reports_a_rate_limit_with_retry_after(adapter, double, call, path):
    double.add_fault(Fault(venue="polymarket", kind="rate_limit", retry_after_s=4, path_prefix=path))
    args = {"orderbook": (TOKEN, YES), "balance_usd": ()}.get(call, (TOKEN,))
    result = getattr(adapter, call)(*args)
    assert result.kind == "rate_limited" and result.http_status == 429
    assert result.retry_after_s == 4.0


def test_a_malformed_balance_is_malformed(adapter, double):
    double.add_fault(
        Fault(
            venue="polymarket", kind="malformed", malformed="missing_fields", path_prefix="/balance-allowance"
        )
    )
    assert adapter.balance_usd().kind == "malformed"


def test_a_hung_venue_is_unreachable_after_the_adapters_own_timeout(adapter, double):
    double.add_fault(Fault(venue="polymarket", kind="timeout", hold_s=5, path_prefix="/book"))
    result = adapter.orderbook(TOKEN, YES)  # returns: bounded by timeout_s, not httpx's default
    assert result.kind == "unreachable" and result.http_status is None
    assert sent(double, "/book") == 1
    print(f"hung call returned after {result.latency_ms:.0f} ms (timeout {SHORT_TIMEOUT_S * 1000:.0f} ms)")


def test_a_slow_answer_within_the_timeout_is_ok(adapter, double):
    double.add_fault(Fault(venue="polymarket", kind="latency", latency_s=0.05, path_prefix="/book"))
    assert adapter.orderbook(TOKEN, YES).ok


def test_a_closed_port_is_unreachable():
    with ExchangeDouble(Scenario()) as gone:
        host = gone.polymarket_host
    adapter = PolymarketAdapter(
        PolymarketCredentials(private_key=polymarket_private_key(), host=host), timeout_s=SHORT_TIMEOUT_S
    )
    for result in (adapter.orderbook(TOKEN, YES), adapter.balance_usd()):
        assert result.kind == "unreachable", result.detail


def test_an_unusable_private_key_is_rejected_without_a_request(double):
    broken = PolymarketAdapter(PolymarketCredentials(private_key="0x1234", host=double.polymarket_host))
    result = broken.balance_usd()
    assert result.kind == "rejected" and "private key" in result.detail
    assert sum(double.call_counts.values()) == 0


# --- the rate limiter in front of the double --------------------------------------------------


def test_the_limiter_holds_the_rate_the_double_sees(adapter, double):
    now = [0.0]
    adapter.rate_limiter = LocalRateLimiter(
        {POLYMARKET_BOOK: BucketSpec(rate_per_s=150, burst=10)}, clock=lambda: now[0], max_wait_s=0.001
    )
    kinds = [adapter.orderbook(TOKEN, YES).kind for _ in range(25)]
    assert kinds == ["ok"] * 10 + ["rate_limited"] * 15
    now[0] += 0.02  # 3 tokens at 150/s
    assert [adapter.orderbook(TOKEN, YES).kind for _ in range(5)].count("ok") == 3
    assert sent(double, "/book") == 13


def test_threads_sharing_a_limiter_hold_the_rate_at_the_double(double):
    spec = BucketSpec(rate_per_s=100, burst=10)
    limiter = LocalRateLimiter({POLYMARKET_BOOK: spec}, max_wait_s=0.5)
    credentials = PolymarketCredentials(private_key=polymarket_private_key(), host=double.polymarket_host)
    adapters = [PolymarketAdapter(credentials, rate_limiter=limiter) for _ in range(8)]
    started = time.monotonic()
    stop_at = started + 1.0

    def hammer(one: PolymarketAdapter) -> None:
        while time.monotonic() < stop_at:
            one.orderbook(TOKEN, YES)

    threads = [threading.Thread(target=hammer, args=(one,)) for one in adapters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed_s = time.monotonic() - started
    count = sent(double, "/book")
    assert count <= spec.burst + spec.rate_per_s * elapsed_s + 1
    assert count >= spec.rate_per_s * 0.5
