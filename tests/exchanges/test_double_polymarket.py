"""The unmodified py_clob_client against the exchange double, over real loopback HTTP."""

import time

import pytest
import yaml
from py_clob_client.client import ClobClient
from py_clob_client.clob_types import ApiCreds, AssetType, BalanceAllowanceParams
from py_clob_client.exceptions import PolyApiException
from py_clob_client.utilities import generate_orderbook_summary_hash

from exchanges.double import ExchangeDouble, PolymarketBook, Scenario
from exchanges.testing import (
    OTHER_POLYMARKET_PRIVATE_KEY,
    make_kalshi_client,
    make_polymarket_client,
    polymarket_address,
    polymarket_private_key,
)

YES_TOKEN = "1111111111111111111111111111111111111111111111111111111111111111111111111111"
NEG_RISK_TOKEN = "2222222222222222222222222222222222222222222222222222222222222222222222222222"
CONDITION = "0x" + "ab" * 32
BOOK_TS_MS = 1_730_000_000_123
FUNDED_BALANCE = 250_000_000  # 250 USDC in 6-decimal base units
DEFAULT_BALANCE = 7_000_000


def _scenario() -> Scenario:
    return Scenario.from_dict(
        {
            "polymarket": {
                "books": {
                    YES_TOKEN: {
                        "market": CONDITION,
                        "bids": [{"price": "0.49", "size": "50"}, {"price": "0.48", "size": "120"}],
                        "asks": [["0.52", "75"], ["0.53", "30"]],
                        "last_trade_price": "0.50",
                        "timestamp_ms": BOOK_TS_MS,
                    },
                    NEG_RISK_TOKEN: {
                        "market": CONDITION,
                        "tick_size": "0.001",
                        "neg_risk": True,
                        "base_fee": 1000,
                    },
                },
                "accounts": {polymarket_address(polymarket_private_key()): FUNDED_BALANCE},
            },
            "default_balance": DEFAULT_BALANCE,
        }
    )


COLLATERAL = BalanceAllowanceParams(asset_type=AssetType.COLLATERAL)


@pytest.fixture(scope="module")
def double():
    with ExchangeDouble(_scenario()) as running:
        yield running


@pytest.fixture
def public(double):
    return make_polymarket_client(double.polymarket_host)


@pytest.fixture
def trader(double):
    client = make_polymarket_client(double.polymarket_host, polymarket_private_key())
    client.set_api_creds(client.create_or_derive_api_creds())
    return client


def test_ok_and_server_time(public):
    assert public.get_ok() == "OK"
    assert abs(public.get_server_time() - time.time()) < 5


def test_order_book_has_best_bid_and_best_ask_last_as_prod_serves_it(public):
    book = public.get_order_book(YES_TOKEN)

    assert (book.market, book.asset_id) == (CONDITION, YES_TOKEN)
    assert [(level.price, level.size) for level in book.bids] == [("0.48", "120"), ("0.49", "50")]
    assert [(level.price, level.size) for level in book.asks] == [("0.53", "30"), ("0.52", "75")]
    assert book.timestamp == str(BOOK_TS_MS)
    assert (book.tick_size, book.neg_risk, book.min_order_size, book.last_trade_price) == (
        "0.01",
        False,
        "5",
        "0.50",
    )


def test_order_book_hash_is_the_servers_hash(public):
    book = public.get_order_book(YES_TOKEN)
    served = book.hash

    assert served == generate_orderbook_summary_hash(book)


def test_book_changed_at_run_time_carries_its_new_timestamp(double, public):
    double.state.add_polymarket_book(PolymarketBook(token_id="live-token", market=CONDITION))
    double.state.set_polymarket_book(
        "live-token", bids=[["0.30", "10"]], asks=[["0.35", "4"]], timestamp_ms=42
    )

    book = public.get_order_book("live-token")

    assert [(level.price, level.size) for level in book.bids] == [("0.30", "10")]
    assert [(level.price, level.size) for level in book.asks] == [("0.35", "4")]
    assert book.timestamp == "42"


def test_unknown_token_has_no_order_book(public):
    with pytest.raises(PolyApiException) as excinfo:
        public.get_order_book("999")

    assert excinfo.value.status_code == 404
    assert excinfo.value.error_msg == {"error": "No orderbook exists for the requested token id"}


def test_closed_market_token_has_no_order_book(double, public):
    double.state.add_polymarket_book(PolymarketBook(token_id="closing-token", market=CONDITION))
    double.state.set_polymarket_closed("closing-token")

    with pytest.raises(PolyApiException) as excinfo:
        public.get_order_book("closing-token")

    assert excinfo.value.status_code == 404


def test_tick_size_neg_risk_and_fee_rate_come_from_the_scenario(public):
    assert public.get_tick_size(NEG_RISK_TOKEN) == "0.001"
    assert public.get_neg_risk(NEG_RISK_TOKEN) is True
    assert public.get_fee_rate_bps(NEG_RISK_TOKEN) == 1000
    assert public.get_fee_rate_bps(YES_TOKEN) == 0


def test_created_and_derived_api_creds_are_the_same(double):
    client = make_polymarket_client(double.polymarket_host, polymarket_private_key())

    created = client.create_api_key()
    derived = client.derive_api_key()

    assert created is not None
    assert (created.api_key, created.api_secret, created.api_passphrase) == (
        derived.api_key,
        derived.api_secret,
        derived.api_passphrase,
    )


def test_collateral_balance_of_a_funded_address(trader):
    balance = trader.get_balance_allowance(COLLATERAL)

    assert balance["balance"] == str(FUNDED_BALANCE)
    assert balance["allowances"]


def test_unknown_address_that_authenticates_gets_the_default_balance(double):
    other = make_polymarket_client(double.polymarket_host, OTHER_POLYMARKET_PRIVATE_KEY)
    other.set_api_creds(other.create_or_derive_api_creds())

    assert other.get_balance_allowance(COLLATERAL)["balance"] == str(DEFAULT_BALANCE)


def test_balance_set_at_run_time_is_reported(double, trader):
    address = polymarket_address(polymarket_private_key())
    double.state.set_polymarket_balance(address, 1_500_000)
    try:
        assert trader.get_balance_allowance(COLLATERAL)["balance"] == "1500000"
    finally:
        double.state.set_polymarket_balance(address, FUNDED_BALANCE)


def test_wrong_api_secret_is_unauthorized(double, trader):
    real = trader.creds
    forged = ApiCreds(real.api_key, "c2VjcmV0LXRoYXQtaXMtbm90LXRoZS1vbmU=", real.api_passphrase)
    client = make_polymarket_client(double.polymarket_host, polymarket_private_key(), creds=forged)

    with pytest.raises(PolyApiException) as excinfo:
        client.get_balance_allowance(COLLATERAL)

    assert excinfo.value.status_code == 401
    assert "error" in excinfo.value.error_msg


def test_wrong_passphrase_is_unauthorized(double, trader):
    real = trader.creds
    forged = ApiCreds(real.api_key, real.api_secret, "not-the-passphrase")
    client = make_polymarket_client(double.polymarket_host, polymarket_private_key(), creds=forged)

    with pytest.raises(PolyApiException) as excinfo:
        client.get_balance_allowance(COLLATERAL)

    assert excinfo.value.status_code == 401


def test_creds_of_another_address_are_unauthorized(double, trader):
    # Alice's creds sent by Bob's client: the key exists but belongs to another address.
    bob = make_polymarket_client(double.polymarket_host, OTHER_POLYMARKET_PRIVATE_KEY, creds=trader.creds)

    with pytest.raises(PolyApiException) as excinfo:
        bob.get_balance_allowance(COLLATERAL)

    assert excinfo.value.status_code == 401


def test_l1_signature_for_another_chain_is_unauthorized(double):
    amoy = ClobClient(double.polymarket_host, chain_id=80002, key=polymarket_private_key())

    with pytest.raises(PolyApiException) as excinfo:
        amoy.create_or_derive_api_creds()

    assert excinfo.value.status_code == 401


def test_stale_l1_timestamp_is_unauthorized():
    with ExchangeDouble(_scenario(), clock=lambda: time.time() + 60) as skewed:
        client = make_polymarket_client(skewed.polymarket_host, polymarket_private_key())

        with pytest.raises(PolyApiException) as excinfo:
            client.derive_api_key()

    assert excinfo.value.status_code == 401
    assert "window" in excinfo.value.error_msg["error"]


def test_scenario_saved_to_yaml_serves_the_same_markets_on_both_venues(tmp_path):
    demo = Scenario.demo()
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(demo.to_dict()))

    with ExchangeDouble(Scenario.load(path)) as double:
        kalshi = make_kalshi_client(double.kalshi_host)
        polymarket = make_polymarket_client(double.polymarket_host)
        for ticker, market in demo.kalshi_markets.items():
            served = kalshi.get_market_orderbook(ticker).orderbook_fp
            assert served.yes_dollars == sorted(market.yes_bids)
        for token_id, book in demo.polymarket_books.items():
            served = polymarket.get_order_book(token_id)
            assert served.market == book.market
            assert {level.price for level in served.asks} == {level["price"] for level in book.asks}
