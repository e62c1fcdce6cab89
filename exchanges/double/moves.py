"""Book moves: the double changes a book shortly after it was read (pure: no I/O, no clock).

An order reaches its venue tens to hundreds of milliseconds after the decision that read the
book, and the book it meets may have thinned, emptied or jumped. A `BookMove` says which reads
set that off (venue, instrument, every Nth read, how many times) and what happens `after_ms`
later; the functions below turn one ladder into the moved one. The state counts the reads and
runs the timer (exchanges/double/state.py).

Kalshi lists bids only: a YES ask at p is a NO bid at 1 - p. A move on a Kalshi outcome's asks
therefore changes the *other* outcome's bids; `side` names the outcome whose asks move.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from config.numbers import DecimalRule, NumberError, WholeRule

MOVE_KINDS = ("thin", "empty", "jump")
VENUES = ("kalshi", "polymarket")
KALSHI_SIDES = ("", "yes", "no")  # "": both outcomes (thin and empty only)
ONE = Decimal(1)
HUNDRED = Decimal(100)

# The numbers a move may hold, by field; a scenario file's `moves[i].<field>` is checked with these.
MOVE_NUMBERS: dict[str, DecimalRule | WholeRule] = {
    "every": WholeRule(1, 1_000_000, unit="reads"),
    "times": WholeRule(1, 10**9, unit="moves"),
    "after_ms": WholeRule(0, 60_000, unit="milliseconds"),
    "lasts_ms": WholeRule(1, 3_600_000, unit="milliseconds"),
    "keep": DecimalRule(Decimal(0), ONE, places=4),
    "depth_cents": DecimalRule(Decimal(0), HUNDRED, places=1, unit="cents"),
    "cents": DecimalRule(Decimal("0.1"), Decimal(99), places=1, unit="cents"),
}
MOVE_FIELDS = frozenset({"venue", "kind", "instrument", "side", *MOVE_NUMBERS})
OPTIONAL_NUMBERS = frozenset({"times", "lasts_ms"})  # None: forever / until the book is set


class MoveError(ValueError):
    """A move refused, with each problem named by its field."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__(self.at(""))

    def at(self, where: str) -> str:
        """The problems with each field named under `where` (e.g. `moves[1].keep: ...`)."""
        return "; ".join(
            f"{'.'.join(part for part in (where, name) if part)}: {problem}"
            for name, problem in self.problems
        )


# (price, size) in dollars and contracts (Kalshi) or shares (Polymarket), any order.
Ladder = list[tuple[Decimal, Decimal]]


@dataclass
class BookMove:
    """On every `every`th read of a matching book (at most `times` times; None = forever),
    `after_ms` later the instrument's book changes until it is set again (by the scenario, a
    replay's mirror or the control API), or, with `lasts_ms`, for that long: a book set meanwhile
    is moved too, and at the end the book is as it was last set.

    - `thin`: each ask level within `depth_cents` of the best ask keeps `keep` of its size
      (rounded down to the places the size is written with; a level left empty goes);
    - `empty`: the ask levels within `depth_cents` of the best ask go;
    - `jump`: every ask and bid moves up `cents`; a level that would reach $1 goes.

    `instrument` is a Kalshi ticker or a Polymarket token id; "" matches any of the venue's.
    `side` (Kalshi only) is the outcome whose asks move: "yes", "no", or "" for both (thin and
    empty; a jump of YES is a fall of NO, so it names one).
    """

    venue: str
    kind: str
    instrument: str = ""
    side: str = ""
    every: int = 1
    times: int | None = None
    after_ms: int = 50
    keep: Decimal = Decimal("0.3")
    depth_cents: Decimal = HUNDRED
    cents: Decimal = ONE
    lasts_ms: int | None = None
    reads: int = field(default=0, compare=False)  # matching reads counted so far
    fired: int = field(default=0, compare=False)  # moves set off so far

    def __post_init__(self) -> None:
        problems = []
        if self.venue not in VENUES:
            problems.append(("venue", f"must be one of {', '.join(VENUES)}, not {self.venue!r}"))
        if self.kind not in MOVE_KINDS:
            problems.append(("kind", f"must be one of {', '.join(MOVE_KINDS)}, not {self.kind!r}"))
        if not isinstance(self.instrument, str):
            problems.append(("instrument", "must be text: a Kalshi ticker or a Polymarket token id"))
        if self.venue == "polymarket" and self.side:
            problems.append(("side", "applies to Kalshi only (a Polymarket book is one token's)"))
        elif self.side not in KALSHI_SIDES:
            problems.append(("side", f"must be yes, no or empty (both), not {self.side!r}"))
        elif self.venue == "kalshi" and self.kind == "jump" and not self.side:
            problems.append(
                ("side", "a Kalshi jump raises one outcome (and lowers the other): name yes or no")
            )
        for name, rule in MOVE_NUMBERS.items():
            raw = getattr(self, name)
            if raw is None and name in OPTIONAL_NUMBERS:
                continue
            try:
                setattr(self, name, rule.parse(raw))
            except NumberError as error:
                problems.append((name, str(error)))
        if problems:
            raise MoveError(problems)

    def matches(self, venue: str, instrument: str) -> bool:
        return venue == self.venue and self.instrument in ("", instrument)

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.fired >= self.times

    def count_read(self, venue: str, instrument: str) -> bool:
        """Count one read of a book; True when this read sets the move off (and count it)."""
        if self.exhausted or not self.matches(venue, instrument):
            return False
        self.reads += 1
        if self.reads % self.every:
            return False
        self.fired += 1
        return True

    def to_dict(self) -> dict[str, Any]:
        """The scenario file's form (numbers as text, counters left out)."""
        out: dict[str, Any] = {"venue": self.venue, "kind": self.kind}
        for name in ("instrument", "side", *MOVE_NUMBERS):
            value = getattr(self, name)
            out[name] = f"{value:f}" if isinstance(value, Decimal) else value
        return out


def move_from_dict(data: Mapping[str, Any]) -> BookMove:
    """A move from a scenario file's mapping; MoveError names each bad field or unknown key."""
    if not isinstance(data, Mapping):
        raise MoveError([("", f"expected a mapping, got {type(data).__name__}")])
    known = ", ".join(sorted(MOVE_FIELDS))
    problems = [(str(name), f"unknown key (known: {known})") for name in data if name not in MOVE_FIELDS]
    problems += [(name, "is required") for name in ("venue", "kind") if name not in data]
    if problems:
        raise MoveError(problems)
    data = dict(data)
    if isinstance(data.get("side"), bool):  # YAML 1.1 (PyYAML) reads an unquoted yes/no as true/false
        data["side"] = "yes" if data["side"] else "no"
    return BookMove(**data)


def demo_book_moves() -> list[BookMove]:
    """The demo's moves, for its default latencies (Kalshi median 120 ms, Polymarket 250 ms).

    A trade reads a Kalshi book twice (validation, arrival) and a Polymarket book three times (the
    market's status is read from its book, then the book, then the arrival). Every 3rd read of a
    Kalshi book (the second trade's validation) thins both outcomes' asks to 30%, 40 ms later, for
    300 ms: the order arrives at the thin book, a partial leg, the other leg's excess unwound. Every
    7th read of a Polymarket book (the fifth trade's validation, for one) raises its prices 3 cents,
    80 ms later, for 500 ms: the leg's limit passed, a legged trade, unless the limit walked deeper
    than 3 cents. Once, the 5th Polymarket read (the second trade's validation) empties that book's
    asks, 20 ms later (the venue's fastest order takes 60 ms), for 1.5 s (its slowest ~1 s): the
    second trade legs, its Kalshi leg sold back, within the demo's first two minutes whatever the
    run's seed. A count that falls on a status read moves the book the validation then reads, and
    one that falls on an arrival moves it after the order met it: those trades, like the rest, fill
    in full or in part as the book and the competition allow. The moves last through the replay's
    updates (one per instrument every ~0.1 s at the demo's 10x) and then give the book back to the
    recording.
    """
    return [
        BookMove(venue="kalshi", kind="thin", every=3, after_ms=40, keep=Decimal("0.3"), lasts_ms=300),
        BookMove(venue="polymarket", kind="jump", every=7, after_ms=80, cents=Decimal(3), lasts_ms=500),
        BookMove(venue="polymarket", kind="empty", every=5, times=1, after_ms=20, lasts_ms=1500),
    ]


# --- the rule: ladders in, ladders out ----------------------------------------------------------


def moved_book(move: BookMove, bids: Ladder, asks: Ladder) -> tuple[Ladder, Ladder]:
    """One outcome's (bids, asks) after `move`; a jump keeps the book uncrossed by moving both."""
    if move.kind == "jump":
        step = (move.cents / HUNDRED).normalize()
        return _raised(bids, step), _raised(asks, step)
    if not asks:
        return list(bids), []
    reach = min(price for price, _ in asks) + move.depth_cents / HUNDRED
    moved = []
    for price, size in asks:
        if price > reach:
            moved.append((price, size))
        elif move.kind == "thin":
            kept = (size * move.keep).quantize(ONE.scaleb(_places(size)), rounding=ROUND_FLOOR)
            if kept > 0:
                moved.append((price, kept))
    return list(bids), moved


def moved_kalshi_book(move: BookMove, yes_bids: Ladder, no_bids: Ladder) -> tuple[Ladder, Ladder]:
    """A Kalshi market's (yes_bids, no_bids) after `move` on the asks of `move.side` (both if "")."""
    for side in (move.side,) if move.side else ("yes", "no"):
        own, opposite = (yes_bids, no_bids) if side == "yes" else (no_bids, yes_bids)
        own, asks = moved_book(move, own, _complement(opposite))
        opposite = _complement(asks)
        yes_bids, no_bids = (own, opposite) if side == "yes" else (opposite, own)
    return yes_bids, no_bids


def ladder_of(levels: Iterable[Sequence[Any] | Mapping[str, Any]]) -> Ladder:
    """Wire levels ([price, size] or {"price", "size"}) as Decimal pairs."""
    out = []
    for level in levels:
        price, size = (level["price"], level["size"]) if isinstance(level, Mapping) else level
        out.append((Decimal(str(price)), Decimal(str(size))))
    return out


def _complement(ladder: Ladder) -> Ladder:
    """Bids of one Kalshi outcome as asks of the other (and back): price p becomes 1 - p."""
    return [(ONE - price, size) for price, size in ladder]


def _raised(ladder: Ladder, step: Decimal) -> Ladder:
    return [(price + step, size) for price, size in ladder if price + step < ONE]


def _places(size: Decimal) -> int:
    exponent = size.as_tuple().exponent
    return min(int(exponent), 0) if isinstance(exponent, int) else 0
