"""Faults injected by the exchange double, as the unmodified official clients experience them."""

import threading
import time

import httpx
import pydantic
import pytest
import urllib3
from kalshi_python_sync.exceptions import ApiException, ServiceException, UnauthorizedException
from py_clob_client.clob_types import AssetType, BalanceAllowanceParams
from py_clob_client.exceptions import PolyApiException
from py_clob_client.http_helpers import helpers as clob_http

from exchanges.double import ExchangeDouble, Fault, Scenario
from exchanges.testing import (
    kalshi_key_pair,
    make_kalshi_client,
    make_polymarket_client,
    polymarket_private_key,
)

KEY_ID = "key-faults"
COLLATERAL = BalanceAllowanceParams(asset_type=AssetType.COLLATERAL)


@pytest.fixture(scope="module")
def double():
    scenario = Scenario.demo()
    with ExchangeDouble(scenario) as running:
        running.state.register_kalshi_key(KEY_ID, kalshi_key_pair()[1])
        yield running


@pytest.fixture(autouse=True)
def _no_faults_left_behind(double):
    yield
    double.clear_faults()


@pytest.fixture
def ticker(double):
    return next(iter(Scenario.demo().kalshi_markets))


@pytest.fixture
def token(double):
    return next(iter(Scenario.demo().polymarket_books))


@pytest.fixture
def kalshi(double):
    return make_kalshi_client(double.kalshi_host, KEY_ID, kalshi_key_pair()[0])


@pytest.fixture(scope="module")
def trader(double):
    client = make_polymarket_client(double.polymarket_host, polymarket_private_key())
    client.set_api_creds(client.create_or_derive_api_creds())
    return client


@pytest.fixture
def short_polymarket_timeout(monkeypatch):
    """py_clob_client's HTTP timeout is its module-global httpx client's; make it 0.5 s."""
    client = httpx.Client(timeout=0.5)
    monkeypatch.setattr(clob_http, "_http_client", client)
    yield
    client.close()


def test_latency_delays_the_answer_which_still_arrives(double, kalshi):
    double.add_fault(Fault(venue="kalshi", kind="latency", latency_s=0.3))

    started = time.monotonic()
    status = kalshi.get_exchange_status()

    assert time.monotonic() - started >= 0.3
    assert status.exchange_active is True


def test_timeout_makes_the_kalshi_client_give_up(double, kalshi, ticker):
    double.add_fault(Fault(venue="kalshi", kind="timeout", path_prefix="/trade-api/v2/markets"))

    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.MaxRetryError) as excinfo:
        kalshi.get_market_with_http_info(ticker, _request_timeout=0.5)

    assert isinstance(excinfo.value.reason, urllib3.exceptions.ReadTimeoutError)
    assert time.monotonic() - started < 2


def test_timeout_makes_the_polymarket_client_give_up(double, token, short_polymarket_timeout):
    double.add_fault(Fault(venue="polymarket", kind="timeout", path_prefix="/book"))
    client = make_polymarket_client(double.polymarket_host)

    with pytest.raises(PolyApiException) as excinfo:
        client.get_order_book(token)

    assert excinfo.value.status_code is None
    assert excinfo.value.error_msg == "Request exception!"


def test_stop_returns_promptly_while_a_connection_is_held():
    double = ExchangeDouble(Scenario.demo()).start()
    double.add_fault(Fault(venue="polymarket", kind="timeout", hold_s=30))
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(httpx.get(double.polymarket_host + "/time", timeout=10))
        except httpx.HTTPError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 5
    while not double.call_counts[("polymarket", "/time")] and time.monotonic() < deadline:
        time.sleep(0.01)

    started = time.monotonic()
    double.stop()
    caller.join(timeout=5)

    assert time.monotonic() - started < 2
    assert len(outcome) == 1
    assert isinstance(outcome[0], httpx.HTTPError)  # hung up on, never answered


def test_status_fault_is_a_kalshi_service_error(double, kalshi, ticker):
    double.add_fault(Fault(venue="kalshi", kind="status", status=503, path_prefix="/trade-api/v2/markets"))

    with pytest.raises(ServiceException) as excinfo:
        kalshi.get_market(ticker)

    assert excinfo.value.status == 503
    assert '"code":"service_unavailable"' in excinfo.value.body


def test_status_fault_is_a_polymarket_api_error(double, token):
    double.add_fault(Fault(venue="polymarket", kind="status", status=500))

    with pytest.raises(PolyApiException) as excinfo:
        make_polymarket_client(double.polymarket_host).get_order_book(token)

    assert excinfo.value.status_code == 500
    assert "error" in excinfo.value.error_msg


def test_rate_limit_on_kalshi_is_a_429_with_retry_after(double, kalshi):
    double.add_fault(Fault(venue="kalshi", kind="rate_limit", retry_after_s=2))

    with pytest.raises(ApiException) as excinfo:
        kalshi.get_exchange_status()

    assert excinfo.value.status == 429
    assert excinfo.value.headers["Retry-After"] == "2"


def test_rate_limit_on_polymarket_is_a_429_with_retry_after(double, token):
    double.add_fault(Fault(venue="polymarket", kind="rate_limit", retry_after_s=3, times=2))

    with pytest.raises(PolyApiException) as excinfo:
        make_polymarket_client(double.polymarket_host).get_order_book(token)
    raw = httpx.get(f"{double.polymarket_host}/book", params={"token_id": token})

    assert excinfo.value.status_code == 429
    assert (raw.status_code, raw.headers["Retry-After"]) == (429, "3")


def test_body_that_is_not_json_breaks_the_kalshi_client(double, kalshi, ticker):
    double.add_fault(Fault(venue="kalshi", kind="malformed", path_prefix="/trade-api/v2/markets"))

    with pytest.raises(ValueError, match="Expecting value"):
        kalshi.get_market(ticker)


def test_body_that_is_not_json_reaches_the_polymarket_client_as_text(double, token):
    double.add_fault(Fault(venue="polymarket", kind="malformed", times=2))
    client = make_polymarket_client(double.polymarket_host)

    assert isinstance(client.get_ok(), str)
    with pytest.raises(TypeError):
        client.get_order_book(token)


def test_missing_required_field_fails_the_kalshi_model(double, kalshi, ticker):
    double.add_fault(
        Fault(venue="kalshi", kind="malformed", malformed="missing_fields", drop_fields=("status",))
    )

    with pytest.raises(pydantic.ValidationError, match="status"):
        kalshi.get_market(ticker)


def test_missing_required_field_fails_the_polymarket_book(double, token):
    double.add_fault(
        Fault(
            venue="polymarket",
            kind="malformed",
            malformed="missing_fields",
            drop_fields=("last_trade_price",),
        )
    )

    with pytest.raises(KeyError, match="last_trade_price"):
        make_polymarket_client(double.polymarket_host).get_order_book(token)


def test_bad_signature_fault_refuses_a_correctly_signed_kalshi_call(double, kalshi):
    assert kalshi.get_balance().balance > 0
    double.add_fault(Fault(venue="kalshi", kind="bad_signature", path_prefix="/trade-api/v2/portfolio"))

    with pytest.raises(UnauthorizedException):
        kalshi.get_balance()


def test_bad_signature_fault_refuses_correct_polymarket_creds(double, trader):
    double.add_fault(Fault(venue="polymarket", kind="bad_signature", path_prefix="/balance-allowance"))

    with pytest.raises(PolyApiException) as excinfo:
        trader.get_balance_allowance(COLLATERAL)

    assert excinfo.value.status_code == 401


def test_fault_with_times_applies_only_that_many_times(double, kalshi, ticker):
    fault = double.add_fault(Fault(venue="kalshi", kind="status", status=500, times=1))

    with pytest.raises(ServiceException):
        kalshi.get_market(ticker)
    market = kalshi.get_market(ticker).market

    assert market.ticker == ticker
    assert fault.hits == 1
    assert double.faults == []


def test_fault_hits_only_its_venue_and_path_prefix(double, kalshi, ticker, token):
    double.add_fault(Fault(venue="kalshi", kind="status", status=503, path_prefix="/trade-api/v2/portfolio"))

    assert kalshi.get_market(ticker).market.ticker == ticker
    assert make_polymarket_client(double.polymarket_host).get_order_book(token).asset_id == token
    with pytest.raises(ServiceException):
        kalshi.get_balance()


def test_clear_faults_restores_service(double, kalshi):
    double.add_fault(Fault(venue="kalshi", kind="status", status=503))
    with pytest.raises(ServiceException):
        kalshi.get_exchange_status()

    double.clear_faults()

    assert kalshi.get_exchange_status().trading_active is True


def test_faulted_requests_are_still_counted(double, kalshi):
    before = double.call_counts[("kalshi", "/trade-api/v2/exchange/status")]
    double.add_fault(Fault(venue="kalshi", kind="status", status=503, times=1))

    with pytest.raises(ServiceException):
        kalshi.get_exchange_status()

    assert double.call_counts[("kalshi", "/trade-api/v2/exchange/status")] == before + 1


def test_low_balance_state_fault_is_reported(double, kalshi):
    double.state.set_kalshi_balance(KEY_ID, 3)

    assert kalshi.get_balance().balance_dollars == "0.03"


def test_closed_kalshi_market_is_reported_closed(double, kalshi, ticker):
    double.state.set_kalshi_status(ticker, "closed")
    try:
        assert kalshi.get_market(ticker).market.status == "closed"
    finally:
        double.state.set_kalshi_status(ticker, "active")


def test_unknown_fault_kind_or_venue_is_refused():
    with pytest.raises(ValueError, match="kind"):
        Fault(venue="kalshi", kind="explode")
    with pytest.raises(ValueError, match="venue"):
        Fault(venue="binance", kind="status")
