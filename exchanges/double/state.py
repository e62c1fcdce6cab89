"""The exchange double's scenario (what the venues look like) and its live, thread-safe state.

A `Scenario` is plain data, loadable from a JSON/YAML dict so a command can read it from a file.
`ExchangeState` wraps one and is what the HTTP handlers read and what tests (or a replay) mutate
while the server runs; every read returns a copy taken under the lock.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from config.numbers import DecimalRule, NumberError, WholeRule

from .moves import BookMove, MoveError, ladder_of, move_from_dict, moved_book, moved_kalshi_book
from .timers import Timers

# The Market.status enum the official Kalshi client enforces; "open" is only a list *filter*.
KALSHI_STATUSES = frozenset(
    {"initialized", "inactive", "active", "closed", "determined", "disputed", "amended", "finalized"}
)
KALSHI_RESULTS = frozenset({"yes", "no", "scalar", ""})

logger = logging.getLogger("exchanges.double")

# what changed, for ExchangeState listeners
BOOK_CHANGED = "book"
LIFECYCLE_CHANGED = "lifecycle"

KALSHI = "kalshi"
POLYMARKET = "polymarket"

# Kalshi ladder level: [price_dollars, count_fp]; Polymarket level: {"price": ..., "size": ...}.
KalshiLadder = list[list[str]]
PolymarketLadder = list[dict[str, str]]

# The numbers a scenario file may hold (the venues' own precision where they have one).
PRICE = DecimalRule(Decimal(0), Decimal(1), places=4, unit="dollars")
KALSHI_COUNT = DecimalRule(Decimal(0), Decimal(10**9), places=2, unit="contracts")
POLYMARKET_SIZE = DecimalRule(Decimal(0), Decimal(10**9), places=6)
TICK_SIZE = DecimalRule(Decimal("0.0001"), Decimal("0.1"), places=4)
BASE_FEE_BPS = WholeRule(0, 10_000, unit="basis points")
TIMESTAMP_MS = WholeRule(0, 2**63 - 1, unit="milliseconds")
BALANCE = WholeRule(0, 10**18)  # Kalshi cents, Polymarket 6-decimal base units
AUTH_WINDOW_S = DecimalRule(Decimal("0.001"), Decimal(86400), places=3, unit="seconds")
MARKET_NUMBERS = {"last_price_dollars": PRICE, "volume_fp": KALSHI_COUNT}
BOOK_NUMBERS = {
    "tick_size": TICK_SIZE,
    "base_fee": BASE_FEE_BPS,
    "last_trade_price": PRICE,
    "min_order_size": POLYMARKET_SIZE,
    "timestamp_ms": TIMESTAMP_MS,
}


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _in_days(days: float) -> str:
    return _iso(datetime.now(UTC) + timedelta(days=days))


def kalshi_ladder(levels: Iterable[Sequence[Any]]) -> KalshiLadder:
    """Normalise [[price, count], ...] to Kalshi's wire strings ("0.4200", "13.00")."""
    return [[f"{Decimal(str(p)):.4f}", f"{Decimal(str(c)):.2f}"] for p, c in levels]


def polymarket_ladder(levels: Iterable[Mapping[str, Any] | Sequence[Any]]) -> PolymarketLadder:
    """Normalise levels given as {"price","size"} dicts or [price, size] pairs to string dicts."""
    out = []
    for level in levels:
        price, size = (level["price"], level["size"]) if isinstance(level, Mapping) else level
        out.append({"price": str(price), "size": str(size)})
    return out


@dataclass
class KalshiMarket:
    ticker: str
    event_ticker: str = ""
    title: str = ""
    yes_sub_title: str = "Yes"
    no_sub_title: str = "No"
    status: str = "active"
    result: str = ""
    open_time: str = field(default_factory=lambda: _in_days(-7))
    close_time: str = field(default_factory=lambda: _in_days(7))
    yes_bids: KalshiLadder = field(default_factory=list)  # [price_dollars, count_fp], any order
    no_bids: KalshiLadder = field(default_factory=list)
    last_price_dollars: str = "0.0000"
    volume_fp: str = "0.00"

    def __post_init__(self) -> None:
        self.event_ticker = self.event_ticker or self.ticker.rsplit("-", 1)[0]
        self.yes_bids = kalshi_ladder(self.yes_bids)
        self.no_bids = kalshi_ladder(self.no_bids)
        _check_kalshi_status(self.status, self.result)


@dataclass
class KalshiAccount:
    public_key_pem: str
    balance_cents: int = 100_000


@dataclass
class PolymarketBook:
    token_id: str
    market: str = ""  # the condition id, "0x..."
    bids: PolymarketLadder = field(default_factory=list)
    asks: PolymarketLadder = field(default_factory=list)
    tick_size: str = "0.01"
    neg_risk: bool = False
    base_fee: int = 0  # bps, as /fee-rate reports it
    last_trade_price: str = "0.50"
    min_order_size: str = "5"
    timestamp_ms: int = 0  # 0 = stamped when loaded
    closed: bool = False  # a closed market has no book: every token endpoint answers 404
    winner: bool | None = None  # once resolved: did this token's outcome win

    def __post_init__(self) -> None:
        self.bids = polymarket_ladder(self.bids)
        self.asks = polymarket_ladder(self.asks)


@dataclass
class Scenario:
    kalshi_markets: dict[str, KalshiMarket] = field(default_factory=dict)
    kalshi_accounts: dict[str, KalshiAccount] = field(default_factory=dict)  # api_key_id -> account
    polymarket_books: dict[str, PolymarketBook] = field(default_factory=dict)  # token_id -> book
    polymarket_accounts: dict[str, int] = field(default_factory=dict)  # address -> base units (6 dp)
    # Balance (6-decimal base units) of an address that authenticates but is not listed above.
    default_balance: int = 1_000_000_000
    auth_window_s: float = 5.0  # freshness window for signed timestamps, both venues
    exchange_active: bool = True
    trading_active: bool = True
    moves: list[BookMove] = field(default_factory=list)  # books that move after a read

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scenario:
        """Build from the file layout: {"kalshi": {"markets", "accounts"}, "polymarket": {"books",
        "accounts"}, plus top-level knobs}. Keys of each mapping are tickers/key ids/token ids."""
        data = checked_numbers(data)
        kalshi = data.get("kalshi", {})
        poly = data.get("polymarket", {})
        knobs = {f.name for f in fields(cls)} - {
            "kalshi_markets",
            "kalshi_accounts",
            "polymarket_books",
            "polymarket_accounts",
            "moves",
        }
        accounts = {}
        for key_id, acct in kalshi.get("accounts", {}).items():
            acct = dict(acct)
            if "public_key_path" in acct:
                acct["public_key_pem"] = Path(acct.pop("public_key_path")).read_text()
            accounts[key_id] = KalshiAccount(**acct)
        return cls(
            kalshi_markets={t: KalshiMarket(ticker=t, **m) for t, m in kalshi.get("markets", {}).items()},
            kalshi_accounts=accounts,
            polymarket_books={t: PolymarketBook(token_id=t, **b) for t, b in poly.get("books", {}).items()},
            polymarket_accounts={a.lower(): int(v) for a, v in poly.get("accounts", {}).items()},
            moves=data["moves"],
            **{k: v for k, v in data.items() if k in knobs},
        )

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        """Read a scenario file: JSON, or YAML when the name ends in .yaml/.yml."""
        text = Path(path).read_text()
        if str(path).endswith((".yaml", ".yml")):
            return cls.from_dict(yaml.safe_load(text) or {})
        return cls.from_dict(json.loads(text))

    def to_dict(self) -> dict[str, Any]:
        """The inverse of `from_dict` (round-trips)."""

        def strip(obj: Any, key: str) -> dict[str, Any]:
            d = asdict(obj)
            d.pop(key)
            return d

        knobs = {
            k: v
            for k, v in asdict(self).items()
            if not k.startswith(("kalshi_", "polymarket_")) and k != "moves"
        }
        return {
            "kalshi": {
                "markets": {t: strip(m, "ticker") for t, m in self.kalshi_markets.items()},
                "accounts": {k: asdict(a) for k, a in self.kalshi_accounts.items()},
            },
            "polymarket": {
                "books": {t: strip(b, "token_id") for t, b in self.polymarket_books.items()},
                "accounts": dict(self.polymarket_accounts),
            },
            "moves": [move.to_dict() for move in self.moves],
            **knobs,
        }

    @classmethod
    def demo(cls) -> Scenario:
        """Three paired markets: each Kalshi ticker has a Polymarket YES and NO token.

        The first pair crosses (Kalshi YES ask 0.45 + Polymarket NO ask 0.50 < $1 before fees);
        the others are fairly priced. No Kalshi account is registered: use
        `ExchangeState.register_kalshi_key` with your own public key.
        """
        pairs = [
            # ticker, condition, yes token, no token, title, kalshi yes/no bids, poly yes/no asks
            (
                "FED-25DEC-T4.00",
                "0x" + "a1" * 32,
                "71321045679252212594626385532706912750332728571942532289631379312455583992563",
                "52114319501245915516055106046884209969926127482827954674443846427813813222426",
                "Fed funds upper bound above 4.00% after December meeting?",
                [["0.40", "100"], ["0.42", "13"]],
                [["0.53", "40"], ["0.55", "20"]],
                ("0.52", "0.50"),
            ),
            (
                "BTC-25DEC31-B100K",
                "0x" + "b2" * 32,
                "21742633143463906290569050155826241533067272736897614950488156847949938836455",
                "48331043336612883890938759509493159234755048973500640148014422747788308965732",
                "Bitcoin above $100,000 on December 31?",
                [["0.61", "50"], ["0.62", "25"]],
                [["0.36", "30"], ["0.37", "60"]],
                ("0.64", "0.39"),
            ),
            (
                "NYC-RAIN-25NOV30",
                "0x" + "c3" * 32,
                "91094360697357622623953793720402150934374522251651348543981406747516093190659",
                "88027839609243624193415670613052740301400209226036826001633327427047765436702",
                "Measurable rain in Central Park on November 30?",
                [["0.28", "200"], ["0.30", "75"]],
                [["0.68", "90"], ["0.69", "40"]],
                ("0.32", "0.71"),
            ),
        ]
        scenario = cls()
        for ticker, condition, yes_token, no_token, title, yes_bids, no_bids, poly_asks in pairs:
            scenario.kalshi_markets[ticker] = KalshiMarket(
                ticker=ticker, title=title, yes_bids=yes_bids, no_bids=no_bids
            )
            for token, best_ask in zip((yes_token, no_token), poly_asks, strict=True):
                ask = Decimal(best_ask)
                scenario.polymarket_books[token] = PolymarketBook(
                    token_id=token,
                    market=condition,
                    bids=[[str(ask - Decimal("0.03")), "150"], [str(ask - Decimal("0.02")), "80"]],
                    asks=[[str(ask + Decimal("0.01")), "120"], [str(ask), "60"]],
                    last_trade_price=str(ask - Decimal("0.01")),
                )
        return scenario


class _NumberChecks:
    """Walks a scenario dict, parsing each number with its rule and collecting every problem."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def mapping(self, where: str, value: Any) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected a mapping, got {type(value).__name__}")
        return value

    def number(self, where: str, raw: Any, rule: DecimalRule | WholeRule) -> Any:
        """The parsed int for whole numbers; decimals as plain text with the places they were
        written with (they are passed on as the venues' wire strings)."""
        try:
            value = rule.parse(raw) if isinstance(rule, WholeRule) else rule.parse_as_written(raw)
        except NumberError as error:
            self.problems.append(f"{where}: {error}")
            return raw
        return value if isinstance(rule, WholeRule) else f"{value:f}"

    def ladder(self, where: str, levels: Any, size_rule: DecimalRule, size_name: str) -> list[Any]:
        if not isinstance(levels, list):
            raise ValueError(f"{where}: expected a list of levels, got {type(levels).__name__}")
        checked = []
        for index, level in enumerate(levels):
            at = f"{where}[{index}]"
            if isinstance(level, Mapping) and {"price", "size"} <= set(level):
                price, size = level["price"], level["size"]
            elif isinstance(level, list | tuple) and len(level) == 2:
                price, size = level
            else:
                raise ValueError(f"{at}: expected [price, {size_name}]")
            checked.append(
                [self.number(f"{at}.price", price, PRICE), self.number(f"{at}.{size_name}", size, size_rule)]
            )
        return checked


def checked_numbers(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a scenario dict with every number checked against its rule; ValueError lists
    each bad one by its path (e.g. `polymarket.books.<token>.asks[1].price: must be ...`)."""
    checks = _NumberChecks()
    data = copy.deepcopy(dict(checks.mapping("scenario", data)))
    kalshi = data["kalshi"] = dict(checks.mapping("kalshi", data.get("kalshi")))
    markets = kalshi["markets"] = dict(checks.mapping("kalshi.markets", kalshi.get("markets")))
    for ticker, market in markets.items():
        where = f"kalshi.markets.{ticker}"
        market = markets[ticker] = dict(checks.mapping(where, market))
        for side in ("yes_bids", "no_bids"):
            if side in market:
                market[side] = checks.ladder(f"{where}.{side}", market[side], KALSHI_COUNT, "count")
        for name, rule in MARKET_NUMBERS.items():
            if name in market:
                market[name] = checks.number(f"{where}.{name}", market[name], rule)
    accounts = kalshi["accounts"] = dict(checks.mapping("kalshi.accounts", kalshi.get("accounts")))
    for key_id, account in accounts.items():
        where = f"kalshi.accounts.{key_id}"
        account = accounts[key_id] = dict(checks.mapping(where, account))
        if "balance_cents" in account:
            account["balance_cents"] = checks.number(
                f"{where}.balance_cents", account["balance_cents"], BALANCE
            )
    poly = data["polymarket"] = dict(checks.mapping("polymarket", data.get("polymarket")))
    books = poly["books"] = dict(checks.mapping("polymarket.books", poly.get("books")))
    for token, book in books.items():
        where = f"polymarket.books.{token}"
        book = books[token] = dict(checks.mapping(where, book))
        for side in ("bids", "asks"):
            if side in book:
                book[side] = checks.ladder(f"{where}.{side}", book[side], POLYMARKET_SIZE, "size")
        for name, rule in BOOK_NUMBERS.items():
            if name in book:
                book[name] = checks.number(f"{where}.{name}", book[name], rule)
    poly_accounts = dict(checks.mapping("polymarket.accounts", poly.get("accounts")))
    poly["accounts"] = {
        address: checks.number(f"polymarket.accounts.{address}", units, BALANCE)
        for address, units in poly_accounts.items()
    }
    if "default_balance" in data:
        data["default_balance"] = checks.number("default_balance", data["default_balance"], BALANCE)
    if "auth_window_s" in data:
        data["auth_window_s"] = checks.number("auth_window_s", data["auth_window_s"], AUTH_WINDOW_S)
    moves = data.get("moves") or []
    if not isinstance(moves, list):
        raise ValueError(f"moves: expected a list of moves, got {type(moves).__name__}")
    data["moves"] = []
    for index, move in enumerate(moves):
        try:
            data["moves"].append(move_from_dict(move))
        except MoveError as error:
            checks.problems.append(error.at(f"moves[{index}]"))
    if checks.problems:
        raise ValueError("; ".join(checks.problems))
    if "auth_window_s" in data:
        data["auth_window_s"] = float(data["auth_window_s"])
    return data


def _check_kalshi_status(status: str, result: str) -> None:
    if status not in KALSHI_STATUSES:
        raise ValueError(f"Kalshi market status must be one of {sorted(KALSHI_STATUSES)}, not {status!r}")
    if result not in KALSHI_RESULTS:
        raise ValueError(f"Kalshi market result must be one of {sorted(KALSHI_RESULTS)}, not {result!r}")


@dataclass(frozen=True)
class PolymarketCreds:
    address: str  # lower-case
    api_key: str
    secret: str
    passphrase: str


class ExchangeState:
    """The double's mutable world. Every method is safe to call from any thread."""

    def __init__(self, scenario: Scenario | None = None, *, clock: Callable[[], float] = time.time):
        self._lock = threading.RLock()
        self._clock = clock
        self._scenario = copy.deepcopy(scenario) if scenario is not None else Scenario()
        self._updated_ms: dict[str, int] = {}  # ticker -> last change, for Market.updated_time
        self._polymarket_creds: dict[str, PolymarketCreds] = {}  # api_key -> creds
        self._timers = Timers()  # applies book moves after their delay, and ends lasting ones
        # (venue, instrument) -> its ladders as last set (scenario, mirror, control API), kept
        # while a move has changed them since
        self._unmoved: dict[tuple[str, str], tuple[Any, Any]] = {}
        # (venue, instrument) -> moves with `lasts_ms` still in force there: re-applied to a
        # book set meanwhile; each entry is (its own token, the move)
        self._lasting: dict[tuple[str, str], list[tuple[object, BookMove]]] = {}
        # called with (what, venue, instrument) after each change, outside no lock guarantee:
        # what is BOOK_CHANGED or LIFECYCLE_CHANGED (the websocket feeds push from these)
        self._listeners: list[Callable[[str, str, str], None]] = []
        now_ms = self.now_ms()
        for book in self._scenario.polymarket_books.values():
            book.timestamp_ms = book.timestamp_ms or now_ms

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    def add_listener(self, listener: Callable[[str, str, str], None]) -> None:
        """Call `listener(what, venue, instrument)` after every book or lifecycle change, with the
        state's lock held (so listeners see changes in order; they must not block)."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[str, str, str], None]) -> None:
        with self._lock:
            self._listeners = [existing for existing in self._listeners if existing is not listener]

    def _notify(self, what: str, venue: str, instrument: str) -> None:
        for listener in self._listeners:
            try:
                listener(what, venue, instrument)
            except Exception:
                logger.exception("event=double_listener_failed what=%s venue=%s", what, venue)

    @property
    def auth_window_s(self) -> float:
        return self._scenario.auth_window_s

    def snapshot(self) -> Scenario:
        """A deep copy of the whole scenario as it is now (e.g. to save to a file)."""
        with self._lock:
            return copy.deepcopy(self._scenario)

    # --- Kalshi -------------------------------------------------------------------------------

    def kalshi_market(self, ticker: str) -> KalshiMarket | None:
        with self._lock:
            market = self._scenario.kalshi_markets.get(ticker)
            return copy.deepcopy(market) if market else None

    def kalshi_updated_ms(self, ticker: str) -> int | None:
        with self._lock:
            return self._updated_ms.get(ticker)

    def exchange_flags(self) -> tuple[bool, bool]:
        with self._lock:
            return self._scenario.exchange_active, self._scenario.trading_active

    def set_exchange_flags(self, *, exchange_active: bool = True, trading_active: bool = True) -> None:
        with self._lock:
            self._scenario.exchange_active = exchange_active
            self._scenario.trading_active = trading_active

    def add_kalshi_market(self, market: KalshiMarket) -> None:
        with self._lock:
            self._scenario.kalshi_markets[market.ticker] = copy.deepcopy(market)
            self._updated_ms[market.ticker] = self.now_ms()
            self._book_set(KALSHI, market.ticker)

    def set_kalshi_book(
        self, ticker: str, yes_bids: Iterable[Sequence[Any]], no_bids: Iterable[Sequence[Any]]
    ) -> None:
        with self._lock:
            market = self._kalshi(ticker)
            market.yes_bids, market.no_bids = kalshi_ladder(yes_bids), kalshi_ladder(no_bids)
            self._book_set(KALSHI, ticker)

    def set_kalshi_status(self, ticker: str, status: str, result: str = "") -> None:
        _check_kalshi_status(status, result)
        with self._lock:
            market = self._kalshi(ticker)
            market.status, market.result = status, result
            self._updated_ms[ticker] = self.now_ms()
            self._notify(LIFECYCLE_CHANGED, KALSHI, ticker)

    def kalshi_account(self, api_key_id: str) -> KalshiAccount | None:
        with self._lock:
            account = self._scenario.kalshi_accounts.get(api_key_id)
            return copy.deepcopy(account) if account else None

    def register_kalshi_key(
        self, api_key_id: str, public_key_pem: str, balance_cents: int | None = None
    ) -> None:
        """Register (or replace) an API key; keeps the existing balance unless one is given."""
        with self._lock:
            old = self._scenario.kalshi_accounts.get(api_key_id)
            if balance_cents is None:
                balance_cents = old.balance_cents if old else KalshiAccount("").balance_cents
            self._scenario.kalshi_accounts[api_key_id] = KalshiAccount(public_key_pem, balance_cents)

    def set_kalshi_balance(self, api_key_id: str, cents: int) -> None:
        with self._lock:
            account = self._scenario.kalshi_accounts.get(api_key_id)
            if account is None:
                raise KeyError(f"unknown Kalshi api key id {api_key_id!r}; register_kalshi_key first")
            account.balance_cents = int(cents)

    def _kalshi(self, ticker: str) -> KalshiMarket:
        try:
            return self._scenario.kalshi_markets[ticker]
        except KeyError:
            raise KeyError(f"unknown Kalshi ticker {ticker!r}") from None

    # --- Polymarket ---------------------------------------------------------------------------

    def polymarket_book(self, token_id: str) -> PolymarketBook | None:
        """The token's book, or None if it is unknown or its market is closed."""
        with self._lock:
            book = self._scenario.polymarket_books.get(token_id)
            return copy.deepcopy(book) if book and not book.closed else None

    def add_polymarket_book(self, book: PolymarketBook) -> None:
        with self._lock:
            book = copy.deepcopy(book)
            book.timestamp_ms = book.timestamp_ms or self.now_ms()
            self._scenario.polymarket_books[book.token_id] = book
            self._book_set(POLYMARKET, book.token_id)

    def set_polymarket_book(
        self,
        token_id: str,
        bids: Iterable[Mapping[str, Any] | Sequence[Any]],
        asks: Iterable[Mapping[str, Any] | Sequence[Any]],
        timestamp_ms: int | None = None,
    ) -> None:
        with self._lock:
            book = self._polymarket(token_id)
            book.bids, book.asks = polymarket_ladder(bids), polymarket_ladder(asks)
            book.timestamp_ms = timestamp_ms if timestamp_ms is not None else self.now_ms()
            self._book_set(POLYMARKET, token_id)

    def set_polymarket_closed(self, token_id: str, closed: bool = True) -> None:
        with self._lock:
            self._polymarket(token_id).closed = closed
            self._notify(LIFECYCLE_CHANGED, POLYMARKET, token_id)

    def set_polymarket_resolved(self, winning_token_id: str) -> None:
        """The market of `winning_token_id` resolved for that token: every token of the market
        (same condition id) is closed, with `winner` set."""
        with self._lock:
            condition = self._polymarket(winning_token_id).market
            tokens = [
                book
                for book in self._scenario.polymarket_books.values()
                if book.token_id == winning_token_id or (condition and book.market == condition)
            ]
            for book in tokens:
                book.closed, book.winner = True, book.token_id == winning_token_id
            for book in tokens:
                self._notify(LIFECYCLE_CHANGED, POLYMARKET, book.token_id)

    def polymarket_tokens_of(self, token_id: str) -> list[PolymarketBook]:
        """Copies of every token of `token_id`'s market (same condition id), itself included,
        closed or not, in scenario order; [] for an unknown token."""
        with self._lock:
            book = self._scenario.polymarket_books.get(token_id)
            if book is None:
                return []
            return [
                copy.deepcopy(other)
                for other in self._scenario.polymarket_books.values()
                if other.token_id == token_id or (book.market and other.market == book.market)
            ]

    def polymarket_balance(self, address: str) -> int:
        with self._lock:
            return self._scenario.polymarket_accounts.get(address.lower(), self._scenario.default_balance)

    def set_polymarket_balance(self, address: str, base_units: int) -> None:
        with self._lock:
            self._scenario.polymarket_accounts[address.lower()] = int(base_units)

    def save_polymarket_creds(self, creds: PolymarketCreds) -> None:
        with self._lock:
            self._polymarket_creds[creds.api_key] = creds

    def polymarket_creds(self, api_key: str) -> PolymarketCreds | None:
        with self._lock:
            return self._polymarket_creds.get(api_key)

    def _polymarket(self, token_id: str) -> PolymarketBook:
        try:
            return self._scenario.polymarket_books[token_id]
        except KeyError:
            raise KeyError(f"unknown Polymarket token id {token_id!r}") from None

    # --- book moves ---------------------------------------------------------------------------

    def add_book_move(self, move: BookMove) -> BookMove:
        """Start moving books after reads that match `move` (see exchanges/double/moves.py)."""
        with self._lock:
            self._scenario.moves.append(move)
        return move

    def clear_book_moves(self) -> None:
        """No more moves; those set off but not yet applied are dropped (lasting ones still end)."""
        with self._lock:
            self._scenario.moves.clear()

    @property
    def book_moves(self) -> list[BookMove]:
        """The moves in force, with their counts of reads and moves so far; copies."""
        with self._lock:
            return copy.deepcopy(self._scenario.moves)

    def book_read(self, venue: str, instrument: str) -> None:
        """Count a read of a book, after its answer was taken; set off the moves it triggers."""
        with self._lock:
            if not self._scenario.moves:
                return
            triggered = [move for move in self._scenario.moves if move.count_read(venue, instrument)]
        for move in triggered:
            if move.after_ms:
                self._timers.call_later(
                    move.after_ms / 1000, lambda m=move: self._move_book(m, venue, instrument)
                )
            else:
                self._move_book(move, venue, instrument)

    def start_timers(self) -> None:
        """Apply book moves again after `stop_timers` (the double calls it when it starts)."""
        self._timers.open()

    def stop_timers(self) -> None:
        """Stop the timer thread: moves not yet applied or ended, or set off later, are dropped."""
        self._timers.close()

    def _move_book(self, move: BookMove, venue: str, instrument: str) -> None:
        key = (venue, instrument)
        with self._lock:
            if not any(m is move for m in self._scenario.moves):
                return  # cleared after it was set off
            if not self._apply_move(move, key) or move.lasts_ms is None:
                return
            token = object()
            self._lasting.setdefault(key, []).append((token, move))
        self._timers.call_later(move.lasts_ms / 1000, lambda: self._end_move(key, token))

    def _apply_move(self, move: BookMove, key: tuple[str, str]) -> bool:
        """Move the book (under the lock); False if there is no such book."""
        venue, instrument = key
        if venue == KALSHI:
            market = self._scenario.kalshi_markets.get(instrument)
            if market is None:
                return False
            self._unmoved.setdefault(key, (market.yes_bids, market.no_bids))
            yes_bids, no_bids = moved_kalshi_book(move, ladder_of(market.yes_bids), ladder_of(market.no_bids))
            market.yes_bids, market.no_bids = kalshi_ladder(yes_bids), kalshi_ladder(no_bids)
            self._notify(BOOK_CHANGED, KALSHI, instrument)
            return True
        book = self._scenario.polymarket_books.get(instrument)
        if book is None:
            return False
        self._unmoved.setdefault(key, (book.bids, book.asks))
        bids, asks = moved_book(move, ladder_of(book.bids), ladder_of(book.asks))
        book.bids, book.asks = polymarket_ladder(bids), polymarket_ladder(asks)
        book.timestamp_ms = self.now_ms()  # the venue stamps the book it changed
        self._notify(BOOK_CHANGED, POLYMARKET, instrument)
        return True

    def _end_move(self, key: tuple[str, str], token: object) -> None:
        """A lasting move ends: the book as last set, with the moves still lasting applied."""
        with self._lock:
            lasting = [entry for entry in self._lasting.get(key, []) if entry[0] is not token]
            if lasting:
                self._lasting[key] = lasting
            else:
                self._lasting.pop(key, None)
            unmoved = self._unmoved.pop(key, None)
            if unmoved is None:
                return
            venue, instrument = key
            if venue == KALSHI:
                market = self._scenario.kalshi_markets[instrument]
                market.yes_bids, market.no_bids = unmoved
            else:
                book = self._scenario.polymarket_books[instrument]
                book.bids, book.asks = unmoved
                book.timestamp_ms = self.now_ms()
            self._notify(BOOK_CHANGED, venue, instrument)
            for _, move in lasting:
                self._apply_move(move, key)

    def _book_set(self, venue: str, instrument: str) -> None:
        """A book was set from outside (scenario, mirror, control API): earlier moves are gone,
        those still lasting apply to the new book."""
        key = (venue, instrument)
        self._unmoved.pop(key, None)
        self._notify(BOOK_CHANGED, venue, instrument)
        for _, move in self._lasting.get(key, ()):
            self._apply_move(move, key)
