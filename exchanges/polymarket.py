"""Read-only Polymarket CLOB adapter over the official `py_clob_client`.

Every method returns a `CallResult` (see exchanges.results) and never raises.

Transport. py_clob_client sends every request through one module-global
``httpx.Client(http2=True)`` in ``py_clob_client.http_helpers.helpers._http_client``, built with
httpx's default 5 s timeout, and its helpers pass no per-request timeout. Importing this module
replaces that client once (``install_transport``) with one that:
- has an explicit default timeout (`DEFAULT_TIMEOUT_S`),
- applies the calling adapter's own `timeout_s` through a request event hook that reads a
  context variable set around each call (httpx's documented per-request timeout lives in
  ``request.extensions["timeout"]``); other threads and adapters are unaffected,
- records Retry-After of a 429 per thread, because `PolyApiException` keeps only the status
  and the body, not the headers.
Nothing is patched per request, and the client's own request/error code is unchanged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any

import httpx
from py_clob_client.client import ClobClient
from py_clob_client.clob_types import ApiCreds, AssetType, BalanceAllowanceParams, BookParams
from py_clob_client.exceptions import PolyApiException
from py_clob_client.http_helpers import helpers as clob_http

from exchanges.books import NO, POLYMARKET, YES, Book, polymarket_book
from exchanges.ratelimit import (
    POLYMARKET_AUTH,
    POLYMARKET_BALANCE,
    POLYMARKET_BOOK,
    POLYMARKET_BOOKS,
    POLYMARKET_TICK_SIZE,
    credential_fingerprint,
)
from exchanges.redaction import register_secret
from exchanges.results import (
    CallResult,
    Limiter,
    MalformedPayload,
    MarketStatus,
    RequestRefused,
    decimal_from_venue,
    retry_after_seconds,
    timed_call,
)

POLYMARKET_PROD_HOST = "https://clob.polymarket.com"
POLYGON_CHAIN_ID = 137
USDC_BASE_UNITS_PER_USD = Decimal(10) ** 6
DEFAULT_TIMEOUT_S = 3.0
NO_ORDERBOOK_MESSAGE = "no orderbook exists"
# POST /books: Polymarket documents no maximum number of tokens per call. 100 is our choice, the
# size Kalshi documents for its batch call, so one request stays small (under 10 KB of token ids)
# whatever the venue's undocumented cap is. One request counts once against /books' own limit.
MAX_BATCH_TOKENS = 100

_call_timeout_s: ContextVar[float | None] = ContextVar("polymarket_call_timeout_s", default=None)
_last_response = threading.local()


def _apply_call_timeout(request: httpx.Request) -> None:
    timeout_s = _call_timeout_s.get()
    if timeout_s is not None:
        request.extensions["timeout"] = httpx.Timeout(timeout_s).as_dict()


def _remember_retry_after(response: httpx.Response) -> None:
    if response.status_code == 429:
        _last_response.retry_after_s = retry_after_seconds(response.headers)


def install_transport(default_timeout_s: float = DEFAULT_TIMEOUT_S) -> httpx.Client:
    """Replace py_clob_client's module-global httpx client once (idempotent)."""
    current = clob_http._http_client
    if getattr(current, "_arbsim_transport", False):
        return current
    client = httpx.Client(
        http2=True,  # as the library built it; against plain http:// httpx speaks HTTP/1.1
        timeout=httpx.Timeout(default_timeout_s),
        event_hooks={"request": [_apply_call_timeout], "response": [_remember_retry_after]},
    )
    client._arbsim_transport = True  # type: ignore[attr-defined]
    clob_http._http_client = client
    current.close()
    return client


install_transport()


@contextmanager
def _call_timeout(timeout_s: float) -> Iterator[None]:
    token = _call_timeout_s.set(timeout_s)
    _last_response.retry_after_s = None
    try:
        yield
    finally:
        _call_timeout_s.reset(token)


def _last_retry_after_s() -> float | None:
    return getattr(_last_response, "retry_after_s", None)


@dataclass(frozen=True, slots=True)
class PolymarketCredentials:
    private_key: str = field(repr=False)
    funder: str | None = None
    host: str | None = None

    @property
    def resolved_host(self) -> str:
        return (self.host or POLYMARKET_PROD_HOST).rstrip("/")

    @property
    def fingerprint(self) -> str:
        return credential_fingerprint(POLYMARKET, self.private_key, self.funder or "")


def polymarket_credentials_from_secret(secret: Mapping[str, Any]) -> PolymarketCredentials:
    """From a decrypted `UserSecret` dict: ``{"extra": {"private_key", "funder"?, "host"?}}``."""
    extra = secret.get("extra") or {}
    private_key = str(extra.get("private_key") or "").strip()
    if not private_key:
        raise ValueError("extra.private_key: the Polymarket wallet private key is required")
    register_secret(private_key)
    return PolymarketCredentials(
        private_key=private_key,
        funder=extra.get("funder") or None,
        host=extra.get("host") or None,
    )


def book_from_summary(summary: Any, *, token_id: str, side: str, received_ts_ms: int) -> Book:
    """OrderBookSummary (string prices and sizes, best last) -> Book (best first)."""

    def ladder(levels: Any, name: str) -> list[tuple[Decimal, Decimal]]:
        if levels is None:
            raise MalformedPayload(f"{name}: missing")
        return [
            (
                decimal_from_venue(level.price, what=f"{name} price", low=Decimal(0), high=Decimal(1)),
                decimal_from_venue(level.size, what=f"{name} size", low=Decimal(0)),
            )
            for level in levels
        ]

    venue_ts_ms = None
    if summary.timestamp not in (None, ""):
        venue_ts_ms = int(decimal_from_venue(summary.timestamp, what="timestamp", low=Decimal(0)))
    extra = {
        "tick_size": summary.tick_size,
        "neg_risk": summary.neg_risk,
        "min_order_size": summary.min_order_size,
        "last_trade_price": summary.last_trade_price,
        "market": summary.market,
        "hash": summary.hash,
    }
    return polymarket_book(
        token_id,
        side,
        ladder(summary.bids, "bids"),
        ladder(summary.asks, "asks"),
        venue_ts_ms=venue_ts_ms,
        received_ts_ms=received_ts_ms,
        extra=extra,
    )


def balance_usd_from_base_units(raw: Any) -> Decimal:
    """USDC balance in 6-decimal base units (an integer string) -> Decimal dollars."""
    units = decimal_from_venue(raw, what="balance", low=Decimal(0))
    if units != units.to_integral_value():
        raise MalformedPayload(f"balance: expected integer base units, got {raw!r}")
    return units / USDC_BASE_UNITS_PER_USD


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def _is_no_orderbook(exc: PolyApiException) -> bool:
    message = exc.error_msg
    if isinstance(message, dict):
        message = message.get("error", "")
    return exc.status_code == 404 and NO_ORDERBOOK_MESSAGE in str(message).lower()


class PolymarketAdapter:
    venue = POLYMARKET

    def __init__(
        self,
        credentials: PolymarketCredentials,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        rate_limiter: Limiter | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock_ms: Callable[[], int] = _wall_clock_ms,
        chain_id: int = POLYGON_CHAIN_ID,
    ) -> None:
        self.credentials = credentials
        self.timeout_s = float(timeout_s)
        self.rate_limiter = rate_limiter
        self._clock = clock
        self._wall_clock_ms = wall_clock_ms
        self._creds_lock = threading.Lock()
        self._api_creds: ApiCreds | None = None
        self._setup_error: str | None = None
        register_secret(credentials.private_key)
        self._client: Any = None
        try:
            self._client = ClobClient(
                credentials.resolved_host,
                chain_id=chain_id,
                key=credentials.private_key,
                funder=credentials.funder,
            )
        except (ValueError, TypeError) as exc:
            # A malformed key is the user's to fix: report it on every call as `rejected`.
            self._setup_error = f"Polymarket private key unusable: {type(exc).__name__}"

    @cached_property
    def fingerprint(self) -> str:
        # A hash of the key material, asked for on every cached answer: computed once.
        return self.credentials.fingerprint

    def _call[T](self, call: str, bucket: str, fn: Callable[[Any], T], cost: float = 1) -> CallResult[T]:
        def run() -> T:
            if self._setup_error:
                raise RequestRefused(self._setup_error)
            with _call_timeout(self.timeout_s):
                return fn(self._client)

        return timed_call(
            run,
            venue=POLYMARKET,
            call=call,
            rate_limiter=self.rate_limiter if not self._setup_error else None,
            bucket=bucket,
            cost=cost,
            clock=self._clock,
            retry_after_s=_last_retry_after_s,
        )

    def orderbook(self, token_id: str, side: str) -> CallResult[Book]:
        """The book of one outcome token; `side` says which outcome ("yes"/"no") it is."""

        def fetch(client: Any) -> Book:
            if side not in (YES, NO):
                raise RequestRefused(f"side must be 'yes' or 'no', got {side!r}")
            summary = client.get_order_book(token_id)
            return book_from_summary(
                summary, token_id=token_id, side=side, received_ts_ms=self._wall_clock_ms()
            )

        return self._call("orderbook", POLYMARKET_BOOK, fetch)

    def orderbooks(self, token_sides: Sequence[tuple[str, str]]) -> CallResult[dict[str, Book]]:
        """The books of up to MAX_BATCH_TOKENS outcome tokens in one call, {token_id: Book};
        each (token_id, side) says which outcome ("yes"/"no") the token is. A token the venue
        left out of its answer is absent."""

        def fetch(client: Any) -> dict[str, Book]:
            sides = dict(token_sides)
            if not 1 <= len(sides) <= MAX_BATCH_TOKENS:
                raise RequestRefused(f"tokens: 1 to {MAX_BATCH_TOKENS} per call, got {len(sides)}")
            bad = sorted({side for side in sides.values() if side not in (YES, NO)})
            if bad:
                raise RequestRefused(f"side must be 'yes' or 'no', got {bad[0]!r}")
            summaries = client.get_order_books([BookParams(token_id=token) for token in sides])
            received_ts_ms = self._wall_clock_ms()
            return {
                summary.asset_id: book_from_summary(
                    summary,
                    token_id=summary.asset_id,
                    side=sides[summary.asset_id],
                    received_ts_ms=received_ts_ms,
                )
                for summary in summaries
                if summary.asset_id in sides
            }

        return self._call("orderbooks", POLYMARKET_BOOKS, fetch)

    def market_status(self, token_id: str) -> CallResult[MarketStatus]:
        """The CLOB has no status call in our subset: a token with a book is tradeable; a 404
        "No orderbook exists" means the market is closed (or never listed)."""

        def fetch(client: Any) -> MarketStatus:
            try:
                client.get_order_book(token_id)
            except PolyApiException as exc:
                if not _is_no_orderbook(exc):
                    raise
                return MarketStatus(
                    instrument_id=token_id,
                    venue_status="closed",
                    tradeable=False,
                    resolved=False,
                    venue=POLYMARKET,
                )
            return MarketStatus(
                instrument_id=token_id,
                venue_status="active",
                tradeable=True,
                resolved=False,
                venue=POLYMARKET,
            )

        return self._call("market_status", POLYMARKET_BOOK, fetch)

    def market_resolution(self, condition_id: str) -> CallResult[MarketStatus]:
        """The market as GET /markets/{condition_id} reports it (`client.get_market`): closed
        or not, and once resolved the token whose `winner` is true (`winning_instrument_id`)."""

        def fetch(client: Any) -> MarketStatus:
            if not condition_id:
                raise RequestRefused("condition_id is required")
            market = client.get_market(condition_id)
            closed = market["closed"]
            if not isinstance(closed, bool):
                raise MalformedPayload(f"closed: expected true or false, got {closed!r}")
            winners = [str(token["token_id"]) for token in market["tokens"] if token.get("winner") is True]
            if len(winners) > 1:
                raise MalformedPayload(f"tokens: {len(winners)} winners")
            return MarketStatus(
                instrument_id=condition_id,
                venue_status="resolved" if winners else "closed" if closed else "active",
                tradeable=not closed,
                resolved=bool(winners),
                winning_instrument_id=winners[0] if winners else None,
                venue=POLYMARKET,
            )

        return self._call("market_resolution", POLYMARKET_BOOK, fetch)

    def condition_id(self, token_id: str) -> CallResult[str]:
        """The condition id of a token's market (the `market` of its book; a closed market has
        no book, so ask while it trades)."""

        def fetch(client: Any) -> str:
            market = client.get_order_book(token_id).market
            if not market:
                raise MalformedPayload("market: the book names no condition id")
            return str(market)

        return self._call("condition_id", POLYMARKET_BOOK, fetch)

    def tick_size(self, token_id: str) -> CallResult[Decimal]:
        def fetch(client: Any) -> Decimal:
            raw = client.get_tick_size(token_id)
            return decimal_from_venue(str(raw), what="tick_size", low=Decimal(0), high=Decimal(1))

        return self._call("tick_size", POLYMARKET_TICK_SIZE, fetch)

    def neg_risk(self, token_id: str) -> CallResult[bool]:
        def fetch(client: Any) -> bool:
            value = client.get_neg_risk(token_id)
            if not isinstance(value, bool):
                raise MalformedPayload(f"neg_risk: expected a boolean, got {type(value).__name__}")
            return value

        return self._call("neg_risk", POLYMARKET_TICK_SIZE, fetch)

    def fee_rate_bps(self, token_id: str) -> CallResult[int]:
        def fetch(client: Any) -> int:
            value = client.get_fee_rate_bps(token_id)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise MalformedPayload(f"base_fee: expected non-negative integer bps, got {value!r}")
            return value

        return self._call("fee_rate_bps", POLYMARKET_TICK_SIZE, fetch)

    def _ensure_api_creds(self, client: Any) -> None:
        """Derive L2 credentials once per adapter (POST create, falling back to GET derive)."""
        with self._creds_lock:
            if self._api_creds is not None:
                return
            if self.rate_limiter is not None:
                self.rate_limiter.acquire(POLYMARKET_AUTH, 2)
            creds = client.create_or_derive_api_creds()
            if creds is None:
                raise MalformedPayload("create/derive API key: the venue's reply had no usable key")
            register_secret(creds.api_secret)
            register_secret(creds.api_passphrase)
            client.set_api_creds(creds)
            self._api_creds = creds

    def balance_usd(self) -> CallResult[Decimal]:
        def fetch(client: Any) -> Decimal:
            self._ensure_api_creds(client)
            try:
                payload = client.get_balance_allowance(
                    BalanceAllowanceParams(asset_type=AssetType.COLLATERAL)
                )
            except PolyApiException as exc:
                if exc.status_code == 401:  # revoked or stale L2 key: derive afresh next time
                    with self._creds_lock:
                        self._api_creds = None
                raise
            return balance_usd_from_base_units(payload["balance"])

        return self._call("balance", POLYMARKET_BALANCE, fetch)
