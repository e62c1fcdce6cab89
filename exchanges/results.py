"""Typed outcomes of venue calls: adapters return a `CallResult` instead of raising.

Every adapter method goes through `timed_call`, which waits for the rate limiter, measures the
call, and turns the official clients' exceptions into one of five kinds:

- ``ok``: the venue answered and the payload parsed; ``value`` holds it.
- ``unreachable``: connect error, timeout, transport failure, or a 5xx (the venue is not serving).
- ``rate_limited``: HTTP 429 (``retry_after_s`` from the Retry-After header), or our own limiter
  would have had to wait longer than its bound.
- ``rejected``: any other 4xx (401, 403, 404, ...), or a request we refuse to send (bad arguments,
  unusable credentials).
- ``malformed``: the venue answered 2xx but the body did not validate (pydantic ValidationError,
  missing key, bad JSON, unparseable or out-of-range number).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx
import pydantic
import urllib3.exceptions
from kalshi_python_sync.exceptions import ApiException as KalshiApiException
from py_clob_client.exceptions import PolyApiException, PolyException

from exchanges.redaction import redact

OK = "ok"
UNREACHABLE = "unreachable"
RATE_LIMITED = "rate_limited"
REJECTED = "rejected"
MALFORMED = "malformed"
KINDS = (OK, UNREACHABLE, RATE_LIMITED, REJECTED, MALFORMED)

DETAIL_MAX_CHARS = 300

# What a 2xx body that does not match the schema raises somewhere between the client's JSON
# decoding, its model validation, and our own parsing of the values it returns.
MALFORMED_ERRORS: tuple[type[BaseException], ...] = (
    pydantic.ValidationError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,  # e.g. a plain-text body where the client expects a dict and calls .get()
    ValueError,  # json.JSONDecodeError, int("x"), and our MalformedPayload
    InvalidOperation,
)


@dataclass(frozen=True, slots=True)
class MarketStatus:
    """Whether an instrument can be traded now, in both venues' terms."""

    instrument_id: str
    venue_status: str  # the venue's own word: active, closed, determined, finalized, ...
    tradeable: bool
    resolved: bool
    result: str | None = None  # "yes" / "no" / "scalar" once resolved
    close_time: datetime | None = None
    venue: str = ""
    # A Polymarket market (instrument_id: its condition id) once resolved: the winning token
    winning_instrument_id: str | None = None


class MalformedPayload(ValueError):
    """A value from the venue that parsed as JSON but is not a usable number, price or size."""


class RateLimitWaitExceeded(Exception):
    """Our own limiter would have to wait longer than its bound; no request was sent."""

    def __init__(self, bucket: str, retry_after_s: float) -> None:
        super().__init__(f"local rate limit on {bucket}: next slot in {retry_after_s:.3f}s")
        self.bucket = bucket
        self.retry_after_s = retry_after_s


class RequestRefused(Exception):
    """We refuse to send a request (bad argument, unusable credentials): maps to ``rejected``."""


@dataclass(frozen=True, slots=True)
class CallResult[T]:
    kind: str
    venue: str
    call: str
    value: T | None = None
    detail: str = ""  # the venue's words (status and message), never a secret
    retry_after_s: float | None = None
    latency_ms: float = 0.0
    http_status: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown result kind {self.kind!r}")

    @property
    def ok(self) -> bool:
        return self.kind == OK

    @classmethod
    def success(cls, value: T, *, venue: str, call: str, latency_ms: float = 0.0) -> CallResult[T]:
        return cls(kind=OK, venue=venue, call=call, value=value, latency_ms=latency_ms, http_status=200)

    @classmethod
    def from_exception(
        cls,
        exc: BaseException,
        *,
        venue: str,
        call: str,
        latency_ms: float = 0.0,
        retry_after_s: float | None = None,
    ) -> CallResult[Any]:
        """Classify an exception raised by an official client (or by our parsing of its answer).

        `retry_after_s` is for clients whose exceptions drop the response headers
        (py_clob_client): the adapter captures Retry-After itself and passes it in.
        """
        kind, status, detail, retry = _classify(exc)
        if retry is None:
            retry = retry_after_s
        if kind != RATE_LIMITED:
            retry = None
        return cls(
            kind=kind,
            venue=venue,
            call=call,
            detail=redact(detail)[:DETAIL_MAX_CHARS],
            retry_after_s=retry,
            latency_ms=latency_ms,
            http_status=status,
        )


def kind_for_status(status: int | None) -> str:
    if status is None or status == 0:
        return UNREACHABLE
    if status == 429:
        return RATE_LIMITED
    if 500 <= status <= 599:
        return UNREACHABLE
    if 400 <= status <= 499:
        return REJECTED
    return MALFORMED  # 1xx/3xx/non-200 2xx: not an answer we can use


def retry_after_seconds(headers: Mapping[str, str] | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds (delta-seconds or HTTP-date); None if absent or unparseable."""
    if not headers:
        return None
    raw = None
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value
            break
    if raw is None:
        return None
    raw = str(raw).strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _kalshi_message(exc: KalshiApiException) -> str:
    message = getattr(exc.data, "message", None) or getattr(exc.data, "code", None)
    if not message and exc.body:
        message = exc.body
    return f"HTTP {exc.status} {exc.reason or ''}: {message or ''}".strip()


def _poly_message(exc: PolyApiException) -> str:
    msg = exc.error_msg
    if isinstance(msg, dict):
        msg = msg.get("error") or msg.get("message") or msg
    if exc.status_code is None:
        return f"transport error (connect/timeout): {msg}"
    return f"HTTP {exc.status_code}: {msg}"


def _classify(exc: BaseException) -> tuple[str, int | None, str, float | None]:
    """-> (kind, http_status, detail, retry_after_s)."""
    name = type(exc).__name__
    if isinstance(exc, KalshiApiException):
        status = exc.status or None
        headers = exc.headers if isinstance(exc.headers, Mapping) else None
        return kind_for_status(status), status, _kalshi_message(exc), retry_after_seconds(headers)
    if isinstance(exc, PolyApiException):
        return kind_for_status(exc.status_code), exc.status_code, _poly_message(exc), None
    if isinstance(exc, PolyException):  # raised before any HTTP call (missing auth level)
        return REJECTED, None, f"{name}: {exc.msg}", None
    if isinstance(exc, RateLimitWaitExceeded):
        return RATE_LIMITED, None, str(exc), exc.retry_after_s
    if isinstance(exc, RequestRefused):
        return REJECTED, None, str(exc), None
    if isinstance(exc, urllib3.exceptions.HTTPError | httpx.TransportError | OSError):
        return UNREACHABLE, None, f"{name}: {exc}", None
    if isinstance(exc, MALFORMED_ERRORS):
        return MALFORMED, None, f"{name}: {exc}", None
    return MALFORMED, None, f"unexpected {name}: {exc}", None


def decimal_from_venue(
    raw: object, *, what: str, low: Decimal | None = None, high: Decimal | None = None
) -> Decimal:
    """Parse a venue number (string or int, never float) into a finite Decimal within bounds."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal):
        raise MalformedPayload(f"{what}: expected a decimal string, got {type(raw).__name__}")
    try:
        value = Decimal(raw)
    except InvalidOperation as exc:
        raise MalformedPayload(f"{what}: not a number: {raw!r}") from exc
    if not value.is_finite():
        raise MalformedPayload(f"{what}: not finite: {raw!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise MalformedPayload(f"{what}: {raw!r} outside [{low}, {high}]")
    return value


class Limiter(Protocol):
    """What `timed_call` needs from a rate limiter (see exchanges.ratelimit)."""

    def acquire(self, bucket: str, cost: float = 1) -> float: ...


def timed_call[T](
    fn: Callable[[], T],
    *,
    venue: str,
    call: str,
    rate_limiter: Limiter | None = None,
    bucket: str | None = None,
    cost: float = 1,
    clock: Callable[[], float] = time.monotonic,
    retry_after_s: Callable[[], float | None] | None = None,
) -> CallResult[T]:
    """Run one venue call: wait for the limiter, time the call, and never raise.

    The limiter's wait is not part of `latency_ms`: latency is the venue's, not our queue's.
    """
    try:
        if rate_limiter is not None:
            rate_limiter.acquire(bucket or venue, cost)
    except RateLimitWaitExceeded as exc:
        return CallResult.from_exception(exc, venue=venue, call=call)
    started = clock()
    try:
        value = fn()
    except Exception as exc:
        # The outermost adapter layer, and the only broad catch: a worker must never die on a
        # venue call. _classify maps the clients' specific types; anything else is malformed.
        latency_ms = (clock() - started) * 1000.0
        return CallResult.from_exception(
            exc,
            venue=venue,
            call=call,
            latency_ms=latency_ms,
            retry_after_s=retry_after_s() if retry_after_s else None,
        )
    return CallResult.success(value, venue=venue, call=call, latency_ms=(clock() - started) * 1000.0)
