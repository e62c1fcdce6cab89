"""One rule for every number a person or a client hands the product (API fields, forms, command
options, scenario and pair files). Pure: no Django imports.

Accepted: a JSON/Python number (int, or a finite float or Decimal), or text in plain decimal
notation: an optional sign, ASCII digits, at most one ".", surrounding whitespace ignored. "-0"
is 0. Trailing zeros are not decimal places ("1.50" has one). Refused, with a message that
names the accepted range: exponents ("1e3"), NaN and Infinity, thousands separators ("1,000",
"1_000", "1 000"), non-ASCII digits, booleans, empty text, values outside the field's range and
more decimal places than the field keeps.

    STARTING_USD = DecimalRule(Decimal("0.0001"), Decimal("10000000"), places=4)
    STARTING_USD.parse("1000.5")  # Decimal("1000.5000")
    STARTING_USD.parse("1e3")     # NumberError: must be a decimal number written plainly ...
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import Any

# Python's int(), float() and Decimal() also take "1_000", "١٢٣" and "1e3": this pattern is the rule.
PLAIN_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
NOT_FINITE = re.compile(r"[+-]?s?(?:nan|inf|infinity)", re.IGNORECASE)


class NumberError(ValueError):
    """A number that is refused; the message says what is wrong and what is accepted."""


def _text(value: Decimal) -> str:
    return f"{value:f}"  # never exponent notation, even for Decimal("1E+7")


def _places_used(value: Decimal) -> int:
    """Decimal places that carry a non-zero digit (no context rounding, whatever the length)."""
    _sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite: checked by the caller
    significant = "".join(map(str, digits)).rstrip("0")
    if not significant:
        return 0
    return max(0, -(exponent + len(digits) - len(significant)))


@dataclass(frozen=True)
class _Rule:
    low: Decimal
    high: Decimal
    places: int
    unit: str = ""

    def accepted(self) -> str:
        raise NotImplementedError

    def _kind(self) -> str:
        raise NotImplementedError

    def _fail(self, problem: str) -> NumberError:
        return NumberError(f"{problem} (accepted: {self.accepted()})")

    def _number(self, raw: Any) -> Decimal:
        """`raw` as a finite Decimal within range and places, or NumberError."""
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            raise self._fail("is required")
        if isinstance(raw, bool):
            raise self._fail("must be a number, not true or false")
        if isinstance(raw, int):
            value = Decimal(raw)
        elif isinstance(raw, float):
            if not math.isfinite(raw):
                raise self._fail("must be a finite decimal number")
            value = Decimal(repr(raw))  # the shortest text that round-trips: what the client sent
        elif isinstance(raw, Decimal):
            if not raw.is_finite():
                raise self._fail("must be a finite decimal number")
            value = raw
        elif isinstance(raw, str):
            text = raw.strip()
            if NOT_FINITE.fullmatch(text):
                raise self._fail("must be a finite decimal number")
            if not PLAIN_DECIMAL.fullmatch(text):
                raise self._fail(f"must be {self._kind()} written plainly, like {self._example()}")
            value = Decimal(text)
        else:
            raise self._fail(f"must be {self._kind()}, not {type(raw).__name__}")
        if value.is_zero():
            value = value.copy_abs()  # "-0" is 0: never a stored negative zero
        if value < self.low:
            raise self._fail(f"must be greater than or equal to {_text(self.low)}")
        if value > self.high:
            raise self._fail(f"must be less than or equal to {_text(self.high)}")
        if _places_used(value) > self.places:
            raise self._fail(self._too_many_places())
        return value

    def _example(self) -> str:
        return "90" if self.places == 0 else "1234.5"

    def _too_many_places(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class DecimalRule(_Rule):
    """A decimal from `low` to `high` with at most `places` decimal places."""

    def accepted(self) -> str:
        unit = f" of {self.unit}" if self.unit else ""
        return (
            f"a decimal number{unit} from {_text(self.low)} to {_text(self.high)}, "
            f"at most {self.places} decimal places"
        )

    def _kind(self) -> str:
        return "a decimal number"

    def _too_many_places(self) -> str:
        return f"must have at most {self.places} decimal places"

    def parse(self, raw: Any) -> Decimal:
        """The value, quantized to `places`; NumberError says what is wrong and what is accepted."""
        value = self._number(raw)
        digits = len(value.as_tuple().digits) + self.places + 1  # enough precision never to round
        return value.quantize(Decimal(1).scaleb(-self.places), context=Context(prec=max(28, digits)))

    def parse_as_written(self, raw: Any) -> Decimal:
        """The value with the places it was written with ("0.50" stays 0.50; "-0" is 0), for
        text that is passed on as written (the exchange double's wire strings)."""
        return self._number(raw)


@dataclass(frozen=True)
class WholeRule(_Rule):
    """A whole number from `low` to `high` ("5.0" is 5)."""

    def __init__(self, low: int, high: int, *, unit: str = "") -> None:
        super().__init__(Decimal(low), Decimal(high), 0, unit)

    def accepted(self) -> str:
        unit = f" of {self.unit}" if self.unit else ""
        return f"a whole number{unit} from {_text(self.low)} to {_text(self.high)}"

    def _kind(self) -> str:
        return f"a whole number{f' of {self.unit}' if self.unit else ''}"

    def _too_many_places(self) -> str:
        return f"must be {self._kind()}"

    def parse(self, raw: Any) -> int:
        return int(self._number(raw))


def option_type(rule: DecimalRule | WholeRule, convert: Callable[[Any], Any] | None = None) -> Callable:
    """An argparse `type=` for a command option: argparse then names the option in its error
    ("argument --port: must be less than or equal to 65535 (accepted: ...)") and exits non-zero.
    `convert` turns the parsed value into what the command uses (e.g. float for seconds)."""

    def parse(text: str) -> Any:
        try:
            value = rule.parse(text)
        except NumberError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return convert(value) if convert else value

    parse.__name__ = rule.accepted()  # argparse's fallback message names the type
    return parse
