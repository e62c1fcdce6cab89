"""The unmodified kalshi_python_sync client against the exchange double, over real loopback HTTP."""

import threading
import time
from decimal import Decimal

import pytest
from kalshi_python_sync.exceptions import NotFoundException, UnauthorizedException

from exchanges.double import ExchangeDouble, KalshiMarket, Scenario
from exchanges.testing import kalshi_key_pair, make_kalshi_client, new_kalshi_key_pair

TICKER = "KXTEST-26JAN01-T50"
KEY_ID = "key-alice"


def _scenario() -> Scenario:
    _, public_pem = kalshi_key_pair()
    scenario = Scenario.from_dict(
        {
            "kalshi": {
                "markets": {
                    TICKER: {
                        "title": "Test market above 50?",
                        "close_time": "2026-01-01T15:00:00Z",
                        "yes_bids": [["0.42", "13"], ["0.40", "100"], ["0.35", "7"]],
                        "no_bids": [["0.55", "20"], ["0.50", "5"]],
                    }
                },
                "accounts": {KEY_ID: {"public_key_pem": public_pem, "balance_cents": 123_456}},
            }
        }
    )
    return scenario


@pytest.fixture(scope="module")
def double():
    with ExchangeDouble(_scenario()) as running:
        yield running


@pytest.fixture
def client(double):
    private_pem, _ = kalshi_key_pair()
    return make_kalshi_client(double.kalshi_host, KEY_ID, private_pem)


def test_exchange_status_reports_trading(client):
    status = client.get_exchange_status()

    assert status.exchange_active is True
    assert status.trading_active is True


def test_market_is_active_with_top_of_book_from_both_bid_ladders(client):
    market = client.get_market(TICKER).market

    assert market.ticker == TICKER
    assert market.status == "active"
    assert market.result == ""
    assert market.close_time.isoformat() == "2026-01-01T15:00:00+00:00"
    assert (market.yes_bid_dollars, market.yes_bid_size_fp) == ("0.4200", "13.00")
    # Kalshi lists bids only: YES ask = 1 - best NO bid, NO ask = 1 - best YES bid.
    assert (market.yes_ask_dollars, market.yes_ask_size_fp) == ("0.4500", "20.00")
    assert market.no_bid_dollars == "0.5500"
    assert market.no_ask_dollars == "0.5800"


def test_unknown_ticker_is_not_found(client):
    with pytest.raises(NotFoundException) as excinfo:
        client.get_market("NO-SUCH-TICKER")

    assert excinfo.value.status == 404
    assert '"code":"not_found"' in excinfo.value.body


def test_orderbook_lists_bids_ascending_with_the_best_last(client):
    book = client.get_market_orderbook(TICKER).orderbook_fp

    assert book.yes_dollars == [["0.3500", "7.00"], ["0.4000", "100.00"], ["0.4200", "13.00"]]
    assert book.no_dollars == [["0.5000", "5.00"], ["0.5500", "20.00"]]


def test_orderbook_depth_keeps_only_the_best_levels(client):
    book = client.get_market_orderbook(TICKER, depth=2).orderbook_fp

    assert book.yes_dollars == [["0.4000", "100.00"], ["0.4200", "13.00"]]
    assert book.no_dollars == [["0.5000", "5.00"], ["0.5500", "20.00"]]


def test_book_changed_at_run_time_is_served_on_the_next_call(double, client):
    double.state.add_kalshi_market(KalshiMarket(ticker="KXTEST-LIVE", yes_bids=[["0.10", "1"]]))
    double.state.set_kalshi_book("KXTEST-LIVE", yes_bids=[["0.61", "3"]], no_bids=[["0.37", "9"]])

    book = client.get_market_orderbook("KXTEST-LIVE").orderbook_fp
    market = client.get_market("KXTEST-LIVE").market

    assert book.yes_dollars == [["0.6100", "3.00"]]
    assert book.no_dollars == [["0.3700", "9.00"]]
    assert market.yes_ask_dollars == "0.6300"


@pytest.mark.parametrize(("status", "result"), [("closed", ""), ("determined", "yes"), ("finalized", "no")])
def test_market_lifecycle_status_reaches_the_client(double, client, status, result):
    double.state.add_kalshi_market(KalshiMarket(ticker="KXTEST-LIFE"))
    double.state.set_kalshi_status("KXTEST-LIFE", status, result)

    market = client.get_market("KXTEST-LIFE").market

    assert (market.status, market.result) == (status, result)


def test_status_outside_the_clients_enum_is_refused_by_the_state(double):
    # "open" is only a list filter on Kalshi; serving it would break the client's model.
    with pytest.raises(ValueError, match="status"):
        double.state.set_kalshi_status(TICKER, "open")


def test_balance_with_the_registered_key(client):
    balance = client.get_balance()

    assert balance.balance == 123_456
    assert balance.balance_dollars == "1234.56"
    assert abs(balance.updated_ts - time.time()) < 60


def test_balance_set_at_run_time_is_reported(double, client):
    double.state.register_kalshi_key("key-low", kalshi_key_pair()[1], balance_cents=100_000)
    double.state.set_kalshi_balance("key-low", 250)
    low = make_kalshi_client(double.kalshi_host, "key-low", kalshi_key_pair()[0])

    assert Decimal(low.get_balance().balance_dollars) == Decimal("2.50")


def test_balance_without_credentials_is_unauthorized(double):
    anonymous = make_kalshi_client(double.kalshi_host)

    with pytest.raises(UnauthorizedException) as excinfo:
        anonymous.get_balance()

    assert '"code":"unauthorized"' in excinfo.value.body


def test_balance_with_an_unregistered_key_id_is_unauthorized(double):
    stranger = make_kalshi_client(double.kalshi_host, "key-nobody", kalshi_key_pair()[0])

    with pytest.raises(UnauthorizedException):
        stranger.get_balance()


def test_balance_signed_with_the_wrong_private_key_is_unauthorized(double):
    wrong_private_pem, _ = new_kalshi_key_pair()
    impostor = make_kalshi_client(double.kalshi_host, KEY_ID, wrong_private_pem)

    with pytest.raises(UnauthorizedException) as excinfo:
        impostor.get_balance()

    assert "signature" in excinfo.value.body


def test_bad_signature_on_a_public_call_is_still_unauthorized(double):
    impostor = make_kalshi_client(double.kalshi_host, KEY_ID, new_kalshi_key_pair()[0])

    with pytest.raises(UnauthorizedException):
        impostor.get_market(TICKER)


def test_public_calls_need_no_credentials(double):
    anonymous = make_kalshi_client(double.kalshi_host)

    assert anonymous.get_market(TICKER).market.ticker == TICKER


def test_stale_timestamp_is_unauthorized():
    # The server's clock runs 10 s ahead, so every signed timestamp is outside the 5 s window.
    private_pem, _ = kalshi_key_pair()
    with ExchangeDouble(_scenario(), clock=lambda: time.time() + 10) as skewed:
        client = make_kalshi_client(skewed.kalshi_host, KEY_ID, private_pem)

        with pytest.raises(UnauthorizedException) as excinfo:
            client.get_balance()

    assert "window" in excinfo.value.body


def test_calls_are_counted_per_path_without_query(double, client):
    before = double.call_counts[("kalshi", f"/trade-api/v2/markets/{TICKER}/orderbook")]

    client.get_market_orderbook(TICKER, depth=1)
    client.get_market_orderbook(TICKER)

    after = double.call_counts[("kalshi", f"/trade-api/v2/markets/{TICKER}/orderbook")]
    assert after - before == 2


def test_concurrent_readers_never_see_half_of_a_book_update(double):
    # Each update sets both ladders at once; a reader must see one whole book or the other.
    book_a = ([["0.40", "10"]], [["0.55", "10"]])
    book_b = ([["0.60", "20"]], [["0.35", "20"]])
    wire = {
        (("0.4000", "10.00"), ("0.5500", "10.00")),
        (("0.6000", "20.00"), ("0.3500", "20.00")),
    }
    double.state.add_kalshi_market(KalshiMarket(ticker="KXTEST-RACE", yes_bids=book_a[0], no_bids=book_a[1]))
    done = threading.Event()
    seen: list[tuple] = []

    def write() -> None:
        flip = False
        while not done.is_set():
            double.state.set_kalshi_book("KXTEST-RACE", *(book_b if flip else book_a))
            flip = not flip

    def read() -> None:
        client = make_kalshi_client(double.kalshi_host)
        for _ in range(25):
            book = client.get_market_orderbook("KXTEST-RACE").orderbook_fp
            seen.append((tuple(book.yes_dollars[0]), tuple(book.no_dollars[0])))

    writer = threading.Thread(target=write)
    readers = [threading.Thread(target=read) for _ in range(4)]
    writer.start()
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    done.set()
    writer.join()

    assert len(seen) == 100
    assert set(seen) <= wire
