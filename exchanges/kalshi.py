"""Read-only Kalshi adapter over the official `kalshi_python_sync` client.

Every method returns a `CallResult` (see exchanges.results) and never raises. The client is
configured with `retries=0` (urllib3 would otherwise retry connects and reads three times; we
decide about retries ourselves) and every call passes an explicit `_request_timeout`: the
client's plain methods (`get_market_orderbook(...)`) hard-code `_request_timeout=None`, which
means urllib3's default of no timeout, so we call the `*_with_http_info` variants that accept it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

import kalshi_python_sync

from exchanges.books import KALSHI, NO, YES, Book, kalshi_books
from exchanges.ratelimit import KALSHI_READ, credential_fingerprint
from exchanges.redaction import register_secret
from exchanges.results import (
    CallResult,
    Limiter,
    MalformedPayload,
    MarketStatus,
    RequestRefused,
    decimal_from_venue,
    timed_call,
)

KALSHI_PROD_HOST = "https://external-api.kalshi.com/trade-api/v2"
KALSHI_DEMO_HOST = "https://external-api.demo.kalshi.co/trade-api/v2"
CENTS_PER_DOLLAR = Decimal(100)
CENT = Decimal("0.01")
MAX_DEPTH = 100
# GET /markets/orderbooks takes 1 to 100 tickers (docs.kalshi.com, Get Multiple Market Orderbooks;
# the client's own validation says the same). The call costs one read, whatever its size: the
# venue counts batch items one by one only for writes (exchange-apis 4).
MAX_BATCH_TICKERS = 100
TRADEABLE_STATUSES = frozenset({"active"})
RESOLVED_STATUSES = frozenset({"determined", "finalized"})


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


@dataclass(frozen=True, slots=True)
class KalshiCredentials:
    api_key_id: str
    private_key_pem: str = field(repr=False)
    host: str | None = None
    use_demo: bool = False

    @property
    def resolved_host(self) -> str:
        if self.host:
            return self.host.rstrip("/")
        return KALSHI_DEMO_HOST if self.use_demo else KALSHI_PROD_HOST

    @property
    def fingerprint(self) -> str:
        return credential_fingerprint(KALSHI, self.api_key_id, self.private_key_pem)


def kalshi_credentials_from_secret(secret: Mapping[str, Any]) -> KalshiCredentials:
    """Build credentials from a decrypted `UserSecret` dict.

    Shape: ``{"api_key": "<key id>", "extra": {"private_key": "<PEM>" | "private_key_path":
    "<file>", "use_demo": bool, "host": "<url>"}}``. Raises ValueError naming the missing field.
    """
    extra = secret.get("extra") or {}
    api_key_id = str(secret.get("api_key") or "").strip()
    if not api_key_id:
        raise ValueError("api_key: the Kalshi API key id is required")
    pem = extra.get("private_key")
    if not pem and extra.get("private_key_path"):
        path = Path(str(extra["private_key_path"])).expanduser()
        try:
            pem = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"extra.private_key_path: cannot read {path}: {exc.strerror}") from None
    if not pem:
        raise ValueError("extra.private_key or extra.private_key_path: a PEM private key is required")
    register_secret(pem)
    host = extra.get("host", secret.get("host")) or None
    use_demo = _truthy(extra.get("use_demo", secret.get("use_demo", False)))
    return KalshiCredentials(api_key_id=api_key_id, private_key_pem=str(pem), host=host, use_demo=use_demo)


@dataclass(frozen=True, slots=True)
class ExchangeStatus:
    exchange_active: bool
    trading_active: bool


def _enum_text(value: object) -> str:
    return str(getattr(value, "value", value) or "")


def market_status_from_model(market: Any) -> MarketStatus:
    status = _enum_text(market.status).lower()
    result = _enum_text(market.result).lower() or None
    return MarketStatus(
        instrument_id=market.ticker,
        venue_status=status,
        tradeable=status in TRADEABLE_STATUSES,
        resolved=status in RESOLVED_STATUSES,
        result=result,
        close_time=market.close_time,
        venue=KALSHI,
    )


def bid_ladder(levels: Any, *, side: str) -> list[tuple[Decimal, Decimal]]:
    """``[[price_dollars, count_fp], ...]`` strings -> Decimal (price, size) pairs."""
    if levels is None:
        raise MalformedPayload(f"{side}_dollars: missing")
    ladder = []
    for index, level in enumerate(levels):
        if len(level) != 2:
            raise MalformedPayload(f"{side}_dollars[{index}]: expected [price, count]")
        price = decimal_from_venue(level[0], what=f"{side} price", low=Decimal(0), high=Decimal(1))
        size = decimal_from_venue(level[1], what=f"{side} count", low=Decimal(0))
        ladder.append((price, size))
    return ladder


def books_from_orderbook(ticker: str, orderbook_fp: Any, *, received_ts_ms: int) -> dict[str, Book]:
    if orderbook_fp is None:
        raise MalformedPayload("orderbook_fp: missing")
    return kalshi_books(
        ticker,
        bid_ladder(orderbook_fp.yes_dollars, side=YES),
        bid_ladder(orderbook_fp.no_dollars, side=NO),
        received_ts_ms=received_ts_ms,
    )


def _best_levels(ladder: list[tuple[Decimal, Decimal]], depth: int | None) -> list[tuple[Decimal, Decimal]]:
    """The best `depth` bids (all when depth is None or <= 0), as the single-book call's depth."""
    if depth is None or depth <= 0:
        return ladder
    return sorted(ladder, key=lambda level: level[0])[-depth:]


def books_by_ticker(
    orderbooks: Any, requested: Sequence[str], *, depth: int | None, received_ts_ms: int
) -> dict[str, dict[str, Book]]:
    """GetMarketOrderbooksResponse.orderbooks -> {ticker: {"yes": Book, "no": Book}}, for the
    requested tickers only; a ticker the venue left out is simply absent."""
    if orderbooks is None:
        raise MalformedPayload("orderbooks: missing")
    wanted = set(requested)
    books: dict[str, dict[str, Book]] = {}
    for entry in orderbooks:
        if entry.ticker not in wanted:
            continue
        if entry.orderbook_fp is None:
            raise MalformedPayload(f"orderbooks[{entry.ticker}].orderbook_fp: missing")
        books[entry.ticker] = kalshi_books(
            entry.ticker,
            _best_levels(bid_ladder(entry.orderbook_fp.yes_dollars, side=YES), depth),
            _best_levels(bid_ladder(entry.orderbook_fp.no_dollars, side=NO), depth),
            received_ts_ms=received_ts_ms,
        )
    return books


def balance_usd_from_cents(cents: object) -> Decimal:
    if isinstance(cents, bool) or not isinstance(cents, int):
        raise MalformedPayload(f"balance: expected integer cents, got {type(cents).__name__}")
    return (Decimal(cents) / CENTS_PER_DOLLAR).quantize(CENT)


class KalshiAdapter:
    venue = KALSHI

    def __init__(
        self,
        credentials: KalshiCredentials,
        *,
        timeout_s: float = 3.0,
        rate_limiter: Limiter | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock_ms: Callable[[], int] = _wall_clock_ms,
    ) -> None:
        self.credentials = credentials
        self.timeout_s = float(timeout_s)
        self.rate_limiter = rate_limiter
        self._clock = clock
        self._wall_clock_ms = wall_clock_ms
        register_secret(credentials.private_key_pem)
        config = kalshi_python_sync.Configuration(host=credentials.resolved_host, retries=0)
        config.api_key_id = credentials.api_key_id
        config.private_key_pem = credentials.private_key_pem
        self._client: Any = None
        self._setup_error: str | None = None
        try:
            self._client = kalshi_python_sync.KalshiClient(config)
        except (ValueError, TypeError) as exc:
            # An unusable key is the user's to fix: every call reports it as `rejected`
            # instead of the constructor killing the worker that builds adapters from secrets.
            self._setup_error = f"Kalshi private key unusable: {type(exc).__name__}"

    @cached_property
    def fingerprint(self) -> str:
        # A hash of the key material, asked for on every cached answer: computed once.
        return self.credentials.fingerprint

    def _call[T](self, call: str, fn: Callable[[Any], T]) -> CallResult[T]:
        def run() -> T:
            if self._setup_error:
                raise RequestRefused(self._setup_error)
            return fn(self._client)

        return timed_call(
            run,
            venue=KALSHI,
            call=call,
            rate_limiter=self.rate_limiter if not self._setup_error else None,
            bucket=KALSHI_READ,
            clock=self._clock,
        )

    def exchange_status(self) -> CallResult[ExchangeStatus]:
        def fetch(client: Any) -> ExchangeStatus:
            status = client.get_exchange_status_with_http_info(_request_timeout=self.timeout_s).data
            return ExchangeStatus(
                exchange_active=status.exchange_active, trading_active=status.trading_active
            )

        return self._call("exchange_status", fetch)

    def market_status(self, ticker: str) -> CallResult[MarketStatus]:
        def fetch(client: Any) -> MarketStatus:
            response = client.get_market_with_http_info(ticker, _request_timeout=self.timeout_s).data
            return market_status_from_model(response.market)

        return self._call("market_status", fetch)

    def market_statuses(self, tickers: Sequence[str]) -> CallResult[dict[str, MarketStatus]]:
        """The status of up to MAX_BATCH_TICKERS markets in one call (one read): GET /markets
        with `tickers`. A ticker the venue does not know is absent from the answer."""

        def fetch(client: Any) -> dict[str, MarketStatus]:
            unique = list(dict.fromkeys(tickers))
            if not 1 <= len(unique) <= MAX_BATCH_TICKERS:
                raise RequestRefused(f"tickers: 1 to {MAX_BATCH_TICKERS} per call, got {len(unique)}")
            response = client.get_markets_with_http_info(
                tickers=",".join(unique), limit=len(unique), _request_timeout=self.timeout_s
            ).data
            statuses = (market_status_from_model(market) for market in response.markets)
            return {status.instrument_id: status for status in statuses if status.instrument_id in unique}

        return self._call("market_statuses", fetch)

    def orderbook(self, ticker: str, depth: int | None = None) -> CallResult[dict[str, Book]]:
        """Both outcome books of one market: {"yes": Book, "no": Book}. depth <= 0 means all."""

        def fetch(client: Any) -> dict[str, Book]:
            if depth is not None and depth > MAX_DEPTH:
                raise RequestRefused(f"depth must be at most {MAX_DEPTH}, got {depth}")
            venue_depth = None if depth is None else max(0, int(depth))
            response = client.get_market_orderbook_with_http_info(
                ticker, depth=venue_depth, _request_timeout=self.timeout_s
            ).data
            return books_from_orderbook(ticker, response.orderbook_fp, received_ts_ms=self._wall_clock_ms())

        return self._call("orderbook", fetch)

    def orderbooks(
        self, tickers: Sequence[str], depth: int | None = None
    ) -> CallResult[dict[str, dict[str, Book]]]:
        """Both outcome books of up to MAX_BATCH_TICKERS markets in one call (one read):
        {ticker: {"yes": Book, "no": Book}}. The venue's batch call has no depth: `depth` keeps the
        best levels here, as the single-book call does at the venue."""

        def fetch(client: Any) -> dict[str, dict[str, Book]]:
            unique = list(dict.fromkeys(tickers))
            if not 1 <= len(unique) <= MAX_BATCH_TICKERS:
                raise RequestRefused(f"tickers: 1 to {MAX_BATCH_TICKERS} per call, got {len(unique)}")
            if depth is not None and depth > MAX_DEPTH:
                raise RequestRefused(f"depth must be at most {MAX_DEPTH}, got {depth}")
            response = client.get_market_orderbooks_with_http_info(
                unique, _request_timeout=self.timeout_s
            ).data
            return books_by_ticker(
                response.orderbooks, unique, depth=depth, received_ts_ms=self._wall_clock_ms()
            )

        return self._call("orderbooks", fetch)

    def balance_usd(self) -> CallResult[Decimal]:
        def fetch(client: Any) -> Decimal:
            response = client.get_balance_with_http_info(_request_timeout=self.timeout_s).data
            return balance_usd_from_cents(response.balance)

        return self._call("balance", fetch)
