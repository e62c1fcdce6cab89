"""Polymarket CLOB's REST subset (served at the root), answered from the double's state.

Every success is exactly 200: py_clob_client raises on any other status, 201/204 included.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal

from py_clob_client.utilities import generate_orderbook_summary_hash, parse_raw_orderbook_summary

from .auth import polymarket_creds_for, verify_polymarket_l1, verify_polymarket_l2
from .kalshi_api import Reply
from .state import ExchangeState, PolymarketBook

NO_BOOK = "No orderbook exists for the requested token id"
# POST /books: Polymarket documents no cap; the double enforces the one the adapter keeps to
# (exchanges/polymarket.py MAX_BATCH_TOKENS), so a caller that ignores it sees a 400 here.
MAX_BATCH_TOKENS = 100
# Polygon CTF exchange and neg-risk CTF exchange (py_clob_client/config.py, chain 137).
EXCHANGE_ADDRESSES = (
    "0x4bFb41d5B3570DeFd03C39a9A4D8dE6Bd8B8982E",
    "0xC5d563A36AE78145C45a50134d48A1215220f80a",
)
MAX_ALLOWANCE = str(2**256 - 1)


def error(status: int, message: str) -> Reply:
    return Reply(status, {"error": message})


def handle(
    state: ExchangeState,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    body: bytes,
) -> Reply:
    if path in ("/auth/api-key", "/auth/derive-api-key"):
        if (path, method) not in (("/auth/api-key", "POST"), ("/auth/derive-api-key", "GET")):
            return error(405, "method not allowed")
        reason, nonce = verify_polymarket_l1(state, headers)
        if reason:
            return error(401, reason)
        creds = polymarket_creds_for(headers["POLY_ADDRESS"], nonce)
        state.save_polymarket_creds(creds)
        return Reply(200, {"apiKey": creds.api_key, "secret": creds.secret, "passphrase": creds.passphrase})
    if path == "/books":
        if method != "POST":
            return error(405, "method not allowed")
        return _books(state, body)
    if method != "GET":
        return error(405, "method not allowed")
    if path in ("/", "/ok"):
        return Reply(200, "OK")
    if path == "/time":
        return Reply(200, state.now_ms() // 1000)
    if path == "/balance-allowance":
        reason = verify_polymarket_l2(state, headers, method, path, body)
        if reason:
            return error(401, reason)
        return _balance_allowance(state, headers["POLY_ADDRESS"], query)
    if path in ("/book", "/tick-size", "/neg-risk", "/fee-rate"):
        token_id = query.get("token_id", "")
        if not token_id:
            return error(400, "Invalid payload: token_id is required")
        book = state.polymarket_book(token_id)
        if book is None:
            return error(404, NO_BOOK if path == "/book" else "market not found")
        if path == "/book":
            state.book_read("polymarket", token_id)
            return Reply(200, book_body(book))
        if path == "/tick-size":
            return Reply(200, {"minimum_tick_size": float(book.tick_size)})
        if path == "/neg-risk":
            return Reply(200, {"neg_risk": book.neg_risk})
        return Reply(200, {"base_fee": book.base_fee})
    if path.startswith("/markets/") and path.count("/") == 2:
        condition_id = path.removeprefix("/markets/")
        tokens = state.polymarket_market(condition_id)
        if not condition_id or not tokens:
            return error(404, "market not found")
        return Reply(200, market_body(condition_id, tokens))
    return error(404, "not found")


def _books(state: ExchangeState, body: bytes) -> Reply:
    try:
        params = json.loads(body or b"null")
    except ValueError:
        return error(400, "Invalid payload: not JSON")
    if not isinstance(params, list) or not all(
        isinstance(p, dict) and isinstance(p.get("token_id"), str) and p["token_id"] for p in params
    ):
        return error(400, "Invalid payload: a list of {token_id} objects is required")
    token_ids = list(dict.fromkeys(p["token_id"] for p in params))
    if not 1 <= len(token_ids) <= MAX_BATCH_TOKENS:
        return error(400, f"Invalid payload: 1 to {MAX_BATCH_TOKENS} token ids, got {len(token_ids)}")
    books = []
    for token_id in token_ids:
        book = state.polymarket_book(token_id)
        if book is None:
            return error(404, f"{NO_BOOK}: {token_id}")
        books.append(book)
    reply = Reply(200, [book_body(book) for book in books])
    for book in books:  # each book read counts, as on /book
        state.book_read("polymarket", book.token_id)
    return reply


def _balance_allowance(state: ExchangeState, address: str, query: Mapping[str, str]) -> Reply:
    asset_type = query.get("asset_type", "")
    if asset_type == "COLLATERAL":
        balance = state.polymarket_balance(address)
    elif asset_type == "CONDITIONAL":
        if not query.get("token_id"):
            return error(400, "token_id is required for CONDITIONAL")
        balance = 0  # the double holds no positions
    else:
        return error(400, "asset_type must be COLLATERAL or CONDITIONAL")
    return Reply(
        200,
        {"balance": str(balance), "allowances": dict.fromkeys(EXCHANGE_ADDRESSES, MAX_ALLOWANCE)},
    )


def market_body(condition_id: str, tokens: list[PolymarketBook]) -> dict:
    """GET /markets/{condition_id} as the CLOB serves it (the client returns the dict as is):
    `closed` once trading stopped, and each token's `winner` once the market resolved."""
    closed = all(book.closed for book in tokens)
    resolved = any(book.winner for book in tokens)
    return {
        "enable_order_book": True,
        "active": True,
        "closed": closed,
        "archived": False,
        "accepting_orders": not closed,
        "condition_id": condition_id,
        "question_id": "",
        "question": "",
        "market_slug": "",
        "end_date_iso": None,
        "minimum_order_size": float(tokens[0].min_order_size),
        "minimum_tick_size": float(tokens[0].tick_size),
        "neg_risk": tokens[0].neg_risk,
        "tokens": [
            {
                "token_id": book.token_id,
                "outcome": book.outcome,
                "price": (1.0 if book.winner else 0.0) if resolved else float(book.last_trade_price),
                "winner": bool(book.winner),
            }
            for book in tokens
        ],
        "tags": [],
    }


def book_body(book: PolymarketBook) -> dict:
    """All ten keys the client reads. As prod serves it: bids ascending, asks descending, so the
    best of each side is last."""
    body = {
        "market": book.market,
        "asset_id": book.token_id,
        "timestamp": str(book.timestamp_ms),
        "hash": "",
        "bids": sorted(book.bids, key=lambda level: Decimal(level["price"])),
        "asks": sorted(book.asks, key=lambda level: Decimal(level["price"]), reverse=True),
        "min_order_size": book.min_order_size,
        "tick_size": book.tick_size,
        "neg_risk": book.neg_risk,
        "last_trade_price": book.last_trade_price,
    }
    # The server's hash, as py-clob-client computes it (SHA1 of the summary with "hash" blank).
    body["hash"] = generate_orderbook_summary_hash(parse_raw_orderbook_summary(body))
    return body
