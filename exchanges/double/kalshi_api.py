"""Kalshi's REST subset (/trade-api/v2/...), answered from the double's state.

Bodies carry every field the official client's pydantic models require (kalshi_python_sync
3.34.0): prices are `*_dollars` strings, sizes `*_fp` strings, no integer-cent prices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from .auth import kalshi_has_auth, verify_kalshi
from .state import ExchangeState, KalshiLadder, KalshiMarket

PREFIX = "/trade-api/v2"
MAX_BATCH_TICKERS = 100  # GET /markets/orderbooks: 1 to 100 tickers (docs.kalshi.com)
ONE = Decimal("1")
_ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    429: "too_many_requests",
    500: "internal_server_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}


@dataclass
class Reply:
    status: int
    body: object
    headers: dict[str, str] = field(default_factory=dict)


def error(status: int, message: str) -> Reply:
    return Reply(status, {"code": _ERROR_CODES.get(status, "error"), "message": message})


def handle(
    state: ExchangeState,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    tickers: Sequence[str] = (),
) -> Reply:
    """`tickers`: every `tickers` value of the query (the batch call repeats the parameter)."""
    route = path[len(PREFIX) :]
    # Prod requires auth only on portfolio calls; the double also checks any headers it is sent,
    # so a client with a broken key fails on its first call, as it would on portfolio calls.
    if route.startswith("/portfolio/") or kalshi_has_auth(headers):
        reason = verify_kalshi(state, headers, method, path)
        if reason:
            return error(401, reason)
    if method != "GET":
        return error(405, f"{method} is not supported by the exchange double")
    if route == "/markets/orderbooks":
        return _orderbooks(state, tickers)
    if route in ("/markets", "/markets/"):
        return _markets(state, query, tickers)
    parts = route.strip("/").split("/")
    if route == "/exchange/status":
        exchange_active, trading_active = state.exchange_flags()
        return Reply(200, {"exchange_active": exchange_active, "trading_active": trading_active})
    if route == "/portfolio/balance":
        account = state.kalshi_account(headers.get("KALSHI-ACCESS-KEY", ""))
        if account is None:
            return error(401, "unknown api key")
        return Reply(200, balance_body(account.balance_cents, state.now_ms()))
    if len(parts) in (2, 3) and parts[0] == "markets" and parts[1]:
        market = state.kalshi_market(parts[1])
        if market is None:
            return error(404, f"market {parts[1]} not found")
        if len(parts) == 2:
            return Reply(200, {"market": market_body(market, state.kalshi_updated_ms(market.ticker))})
        if parts[2] == "orderbook":
            depth_text = query.get("depth", "0")
            try:
                depth = int(depth_text)
            except ValueError:
                return error(400, "depth must be an integer")
            if depth > 100:
                return error(400, "depth must be at most 100")
            state.book_read("kalshi", market.ticker)
            return Reply(200, orderbook_body(market, depth))
    return error(404, f"no route for {path}")


def _markets(state: ExchangeState, query: Mapping[str, str], tickers: Sequence[str]) -> Reply:
    """GET /markets filtered by `tickers` (a comma list): the markets known, in the order asked,
    one page (the double lists no market without the filter)."""
    wanted = list(dict.fromkeys(t for value in tickers for t in value.split(",") if t))
    if not wanted:
        return error(400, "the exchange double lists markets by tickers only")
    limit_text = query.get("limit", "100")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= 1000:
        return error(400, "limit must be 1 to 1000")
    markets = [market for market in map(state.kalshi_market, wanted) if market is not None]
    bodies = [market_body(m, state.kalshi_updated_ms(m.ticker)) for m in markets[: int(limit_text)]]
    return Reply(200, {"markets": bodies, "cursor": ""})


def _orderbooks(state: ExchangeState, tickers: Sequence[str]) -> Reply:
    # The client repeats the parameter (tickers=A&tickers=B); a comma list is read as well.
    wanted = list(dict.fromkeys(t for value in tickers for t in value.split(",") if t))
    if not 1 <= len(wanted) <= MAX_BATCH_TICKERS:
        return error(400, f"tickers: 1 to {MAX_BATCH_TICKERS} market tickers, got {len(wanted)}")
    markets = []
    for ticker in wanted:
        market = state.kalshi_market(ticker)
        if market is None:
            return error(404, f"market {ticker} not found")
        markets.append(market)
    body = {"orderbooks": [{"ticker": m.ticker, **orderbook_body(m)} for m in markets]}
    for market in markets:  # each book read counts, as on the single-book route
        state.book_read("kalshi", market.ticker)
    return Reply(200, body)


def _ascending(ladder: KalshiLadder) -> KalshiLadder:
    return sorted(ladder, key=lambda level: Decimal(level[0]))


def orderbook_body(market: KalshiMarket, depth: int = 0) -> dict:
    """Bids only, ascending by price (best last); depth N keeps the best N levels of each side."""

    def side(ladder: KalshiLadder) -> KalshiLadder:
        levels = _ascending(ladder)
        return levels[-depth:] if depth > 0 else levels

    return {"orderbook_fp": {"yes_dollars": side(market.yes_bids), "no_dollars": side(market.no_bids)}}


def _dollars(value: Decimal) -> str:
    return f"{value:.4f}"


def market_body(market: KalshiMarket, updated_ms: int | None = None) -> dict:
    yes = _ascending(market.yes_bids)
    no = _ascending(market.no_bids)
    best_yes = yes[-1] if yes else None
    best_no = no[-1] if no else None
    # Kalshi lists bids only: the YES ask is 1 - best NO bid, and the NO ask is 1 - best YES bid.
    yes_bid = best_yes[0] if best_yes else "0.0000"
    no_bid = best_no[0] if best_no else "0.0000"
    yes_ask = _dollars(ONE - Decimal(best_no[0])) if best_no else "1.0000"
    no_ask = _dollars(ONE - Decimal(best_yes[0])) if best_yes else "1.0000"
    updated = (
        datetime.fromtimestamp(updated_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if updated_ms
        else market.open_time
    )
    return {
        "ticker": market.ticker,
        "event_ticker": market.event_ticker,
        "market_type": "binary",
        "title": market.title,
        "subtitle": "",
        "yes_sub_title": market.yes_sub_title,
        "no_sub_title": market.no_sub_title,
        "created_time": market.open_time,
        "updated_time": updated,
        "open_time": market.open_time,
        "close_time": market.close_time,
        "expected_expiration_time": market.close_time,
        "expiration_time": market.close_time,
        "latest_expiration_time": market.close_time,
        "settlement_timer_seconds": 300,
        "status": market.status,
        "result": market.result,
        "can_close_early": True,
        "yes_bid_dollars": yes_bid,
        "yes_bid_size_fp": best_yes[1] if best_yes else "0.00",
        "yes_ask_dollars": yes_ask,
        "yes_ask_size_fp": best_no[1] if best_no else "0.00",
        "no_bid_dollars": no_bid,
        "no_ask_dollars": no_ask,
        "last_price_dollars": market.last_price_dollars,
        "previous_yes_bid_dollars": yes_bid,
        "previous_yes_ask_dollars": yes_ask,
        "previous_price_dollars": market.last_price_dollars,
        "volume_fp": market.volume_fp,
        "volume_24h_fp": "0.00",
        "open_interest_fp": "0.00",
        "notional_value_dollars": "1.0000",
        "settlement_bounds_type": "default",
        "expiration_value": "",
        "rules_primary": f"If {market.title or market.ticker}, the market resolves to Yes.",
        "rules_secondary": "",
        "price_level_structure": "linear_cent",
        "price_ranges": [{"start": "0.0100", "end": "0.9900", "step": "0.0100"}],
    }


def balance_body(balance_cents: int, now_ms: int) -> dict:
    return {
        "balance": balance_cents,
        "balance_dollars": f"{Decimal(balance_cents) / 100:.2f}",
        "portfolio_value": 0,
        "updated_ts": now_ms // 1000,
    }
