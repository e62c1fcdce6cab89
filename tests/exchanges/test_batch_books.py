"""Batch book calls (Kalshi GET /markets/orderbooks, Polymarket POST /books) through the official
clients against the exchange double: the same books as the single-book calls, one call and one
rate-limit token per batch, the venues' size limits, and the double's faults and book moves."""

import json
import urllib.error
import urllib.request
from collections import Counter
from urllib.parse import urlencode

import pytest
from py_clob_client.clob_types import BookParams
from py_clob_client.exceptions import PolyApiException

from exchanges.books import NO, YES
from exchanges.double import BookMove, ExchangeDouble, Fault, Scenario
from exchanges.kalshi import MAX_BATCH_TICKERS
from exchanges.polymarket import MAX_BATCH_TOKENS, PolymarketAdapter, PolymarketCredentials
from exchanges.ratelimit import DEFAULT_LIMITS, KALSHI_READ, POLYMARKET_BOOKS, LocalRateLimiter
from exchanges.results import OK, RATE_LIMITED, REJECTED
from exchanges.testing import make_polymarket_client
from ingest.sources import PublicKalshiAdapter

BATCH_PATH = "/trade-api/v2/markets/orderbooks"


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
def tickers(double):
    return list(double.state.snapshot().kalshi_markets)


@pytest.fixture
def tokens(double):
    """(token, side) of the demo's Polymarket books, YES and NO alternating as the scenario lists them."""
    return [
        (token, YES if n % 2 == 0 else NO) for n, token in enumerate(double.state.snapshot().polymarket_books)
    ]


class CountingLimiter(LocalRateLimiter):
    """The venues' limits, and the tokens each bucket has been asked for."""

    def __init__(self):
        super().__init__(DEFAULT_LIMITS)
        self.taken = Counter()

    def acquire(self, bucket, cost=1):
        self.taken[bucket] += cost
        return super().acquire(bucket, cost)


@pytest.fixture
def limiter():
    return CountingLimiter()


@pytest.fixture
def kalshi(double, limiter):
    return PublicKalshiAdapter(double.kalshi_host, rate_limiter=limiter, wall_clock_ms=lambda: 1_000)


@pytest.fixture
def polymarket(double, limiter):
    return PolymarketAdapter(
        PolymarketCredentials(private_key="", host=double.polymarket_host),
        rate_limiter=limiter,
        wall_clock_ms=lambda: 1_000,
    )


def test_one_kalshi_batch_call_gives_every_markets_books_as_the_single_calls_do(
    double, kalshi, limiter, tickers
):
    batch = kalshi.orderbooks(tickers)

    assert batch.kind == OK and batch.call == "orderbooks"
    assert double.call_counts[("kalshi", BATCH_PATH)] == 1
    for ticker in tickers:
        single = kalshi.orderbook(ticker)
        assert batch.value[ticker] == single.value  # YES and NO books, levels and prices alike
    assert limiter.taken[KALSHI_READ] == 1 + len(tickers)  # the batch cost one read


def test_a_kalshi_batch_keeps_the_best_levels_as_the_single_calls_depth(kalshi, tickers):
    batch = kalshi.orderbooks(tickers, depth=1)
    for ticker in tickers:
        assert batch.value[ticker] == kalshi.orderbook(ticker, depth=1).value
        assert len(batch.value[ticker][YES].bids) <= 1


def test_one_polymarket_batch_call_gives_every_tokens_book_as_the_single_calls_do(
    double, polymarket, limiter, tokens
):
    batch = polymarket.orderbooks(tokens)

    assert batch.kind == OK
    assert double.call_counts[("polymarket", "/books")] == 1
    for token, side in tokens:
        assert batch.value[token] == polymarket.orderbook(token, side).value
        assert batch.value[token].side == side
    assert limiter.taken[POLYMARKET_BOOKS] == 1


def test_an_unknown_instrument_refuses_the_batch_naming_it(kalshi, polymarket, tickers, tokens):
    kalshi_result = kalshi.orderbooks([*tickers, "NO-SUCH-MARKET"])
    poly_result = polymarket.orderbooks([*tokens, ("999", YES)])

    assert (kalshi_result.kind, kalshi_result.http_status) == (REJECTED, 404)
    assert "NO-SUCH-MARKET" in kalshi_result.detail
    assert (poly_result.kind, poly_result.http_status) == (REJECTED, 404)
    assert "999" in poly_result.detail


def test_the_adapters_refuse_a_batch_over_the_venue_limit_without_a_request(double, kalshi, polymarket):
    too_many_tickers = kalshi.orderbooks([f"T-{n}" for n in range(MAX_BATCH_TICKERS + 1)])
    too_many_tokens = polymarket.orderbooks([(str(n), YES) for n in range(MAX_BATCH_TOKENS + 1)])

    assert too_many_tickers.kind == REJECTED and "1 to 100" in too_many_tickers.detail
    assert too_many_tokens.kind == REJECTED and "1 to 100" in too_many_tokens.detail
    assert kalshi.orderbooks([]).kind == REJECTED
    assert sum(double.call_counts.values()) == 0


def test_the_double_answers_an_over_limit_kalshi_batch_with_the_venues_400(double, tickers):
    # The official client refuses more than 100 tickers itself, so ask over plain HTTP.
    query = urlencode([("tickers", t) for t in tickers] + [("tickers", f"T-{n}") for n in range(100)])
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{double.base_url}{BATCH_PATH}?{query}", timeout=5)

    assert refused.value.code == 400
    assert json.loads(refused.value.read()) == {
        "code": "bad_request",
        "message": "tickers: 1 to 100 market tickers, got 103",
    }


def test_the_double_answers_an_over_limit_polymarket_batch_with_a_400(double):
    client = make_polymarket_client(double.polymarket_host)
    with pytest.raises(PolyApiException) as refused:
        client.get_order_books([BookParams(token_id=str(n)) for n in range(MAX_BATCH_TOKENS + 1)])

    assert refused.value.status_code == 400
    assert "1 to 100 token ids" in refused.value.error_msg["error"]


def test_faults_on_the_book_paths_reach_the_batch_calls(double, kalshi, polymarket, tickers, tokens):
    double.add_fault(Fault(venue="kalshi", kind="rate_limit", path_prefix="/trade-api/v2/markets", times=1))
    double.add_fault(Fault(venue="polymarket", kind="status", status=503, path_prefix="/book", times=1))

    kalshi_result = kalshi.orderbooks(tickers)
    poly_result = polymarket.orderbooks(tokens)

    assert (kalshi_result.kind, kalshi_result.retry_after_s) == (RATE_LIMITED, 1.0)
    assert (poly_result.kind, poly_result.http_status) == ("unreachable", 503)
    assert kalshi.orderbooks(tickers).ok and polymarket.orderbooks(tokens).ok


def test_a_batch_read_counts_as_a_read_of_each_book_for_book_moves(tickers, tokens):
    with ExchangeDouble(Scenario.demo()) as double:  # its own: the moved books stay moved
        kalshi = PublicKalshiAdapter(double.kalshi_host)
        polymarket = PolymarketAdapter(PolymarketCredentials(private_key="", host=double.polymarket_host))
        double.add_book_move(BookMove(venue="kalshi", kind="empty", every=2, after_ms=0))
        double.add_book_move(BookMove(venue="polymarket", kind="empty", instrument=tokens[0][0], after_ms=0))

        kalshi.orderbooks(tickers)
        polymarket.orderbooks(tokens)

        kalshi_move, poly_move = double.book_moves
        assert (kalshi_move.reads, kalshi_move.fired) == (len(tickers), len(tickers) // 2)
        assert (poly_move.reads, poly_move.fired) == (1, 1)
        assert polymarket.orderbooks(tokens).value[tokens[0][0]].asks == ()  # moved after the read
