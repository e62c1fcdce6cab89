"""Success spans: the stretches of time a pair's edge stays at or above a threshold (pure).

A span is per pair and per direction. It OPENS on the first evaluation whose best direction's
`net_edge_cents` (the edge of a 1-contract order, fees included) reaches the threshold. It
CLOSES, at that evaluation's time, when the edge falls below the threshold, when no direction can
be quoted (a side missing, stale, skewed, crossed or empty), or when the best direction flips (the
old span closes and one for the new direction opens at the same instant: a different trade).

`mean_edge_cents` is **time-weighted**: each edge counts for as long as it stood, until the next
evaluation (or the close). Updates arrive irregularly (a burst of ten ticks in 100 ms should not
outweigh a quiet minute), so a per-update mean would describe the feed, not the opportunity. A
span that closes at the instant it opened has the mean of its only edge.

`SpanUpdated` is emitted only when the peak edge or the max size grows, not on every tick.
Spans are identified by `span_key` = "<opportunity key>:<direction>:<start ms>", stable across
restarts, which the database layer can use as a natural key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from ingest.detector import Evaluation
from ingest.quotes import CENTS_QUANTUM

ZERO = Decimal(0)


def span_key_of(opportunity_key: str, direction: str, start_ms: int) -> str:
    return f"{opportunity_key}:{direction}:{start_ms}"


@dataclass(frozen=True, slots=True)
class SpanOpened:
    key: str  # opportunity key
    span_key: str
    direction: str
    start_ms: int
    edge_cents: Decimal
    size: Decimal


@dataclass(frozen=True, slots=True)
class SpanUpdated:
    key: str
    span_key: str
    direction: str
    at_ms: int
    edge_cents: Decimal
    peak_edge_cents: Decimal
    max_size: Decimal


@dataclass(frozen=True, slots=True)
class SpanClosed:
    key: str
    span_key: str
    direction: str
    start_ms: int
    end_ms: int
    peak_edge_cents: Decimal
    mean_edge_cents: Decimal  # time-weighted, see the module docstring
    max_size: Decimal
    reason: str  # "below_threshold", "direction_changed", or the detector's rejection reason


SpanEvent = SpanOpened | SpanUpdated | SpanClosed


@dataclass(slots=True)
class _OpenSpan:
    key: str
    direction: str
    start_ms: int
    last_ms: int
    last_edge_cents: Decimal
    peak_edge_cents: Decimal
    max_size: Decimal
    weighted_sum: Decimal  # sum of edge_cents x ms over [start_ms, last_ms]

    @property
    def span_key(self) -> str:
        return span_key_of(self.key, self.direction, self.start_ms)

    def advance(self, at_ms: int) -> None:
        if at_ms > self.last_ms:
            self.weighted_sum += self.last_edge_cents * (at_ms - self.last_ms)
            self.last_ms = at_ms

    def close(self, at_ms: int, reason: str) -> SpanClosed:
        self.advance(at_ms)
        duration_ms = self.last_ms - self.start_ms
        mean = self.weighted_sum / duration_ms if duration_ms > 0 else self.last_edge_cents
        return SpanClosed(
            key=self.key,
            span_key=self.span_key,
            direction=self.direction,
            start_ms=self.start_ms,
            end_ms=self.last_ms,
            peak_edge_cents=self.peak_edge_cents,
            mean_edge_cents=mean.quantize(CENTS_QUANTUM),
            max_size=self.max_size,
            reason=reason,
        )


class SpanTracker:
    """Feed it every Evaluation (in time order); it returns the span events they cause."""

    def __init__(self, threshold_cents: Decimal) -> None:
        self.threshold_cents = Decimal(threshold_cents)
        self._open: dict[str, _OpenSpan] = {}

    def open_span_key(self, opportunity_key: str) -> str | None:
        span = self._open.get(opportunity_key)
        return span.span_key if span else None

    def open_keys(self) -> list[str]:
        return list(self._open)

    def on_evaluation(self, evaluation: Evaluation) -> list[SpanEvent]:
        key, at_ms, best = evaluation.opportunity_key, evaluation.at_ms, evaluation.best
        span = self._open.get(key)
        above = best is not None and best.net_edge_cents >= self.threshold_cents
        events: list[SpanEvent] = []
        if span is not None:
            if not above or best.direction != span.direction:
                if best is None:
                    reason = evaluation.reason
                elif not above:
                    reason = "below_threshold"
                else:
                    reason = "direction_changed"
                events.append(span.close(at_ms, reason))
                del self._open[key]
                span = None
            else:
                span.advance(at_ms)
                span.last_edge_cents = best.net_edge_cents
                grew = best.net_edge_cents > span.peak_edge_cents or best.size > span.max_size
                span.peak_edge_cents = max(span.peak_edge_cents, best.net_edge_cents)
                span.max_size = max(span.max_size, best.size)
                if grew:
                    events.append(
                        SpanUpdated(
                            key,
                            span.span_key,
                            span.direction,
                            at_ms,
                            best.net_edge_cents,
                            span.peak_edge_cents,
                            span.max_size,
                        )
                    )
        if span is None and above:
            span = _OpenSpan(
                key=key,
                direction=best.direction,
                start_ms=at_ms,
                last_ms=at_ms,
                last_edge_cents=best.net_edge_cents,
                peak_edge_cents=best.net_edge_cents,
                max_size=best.size,
                weighted_sum=ZERO,
            )
            self._open[key] = span
            events.append(
                SpanOpened(key, span.span_key, best.direction, at_ms, best.net_edge_cents, best.size)
            )
        return events

    def close_all(self, at_ms: int, reason: str = "shutdown") -> list[SpanClosed]:
        """End every open span (the end of a replay; not a restart, which should `export_open`)."""
        closed = [span.close(at_ms, reason) for span in self._open.values()]
        self._open.clear()
        return closed

    def export_open(self) -> list[dict[str, Any]]:
        """The open spans as JSON-able dicts (Decimals as strings), for `restore` after a restart."""
        exported = []
        for span in self._open.values():
            row = asdict(span)
            for name in ("last_edge_cents", "peak_edge_cents", "max_size", "weighted_sum"):
                row[name] = str(row[name])
            exported.append(row)
        return exported

    def restore(self, open_spans: list[dict[str, Any]]) -> None:
        """Resume spans exported before a restart; the next evaluation continues or closes them."""
        for row in open_spans:
            span = _OpenSpan(
                key=row["key"],
                direction=row["direction"],
                start_ms=int(row["start_ms"]),
                last_ms=int(row["last_ms"]),
                last_edge_cents=Decimal(row["last_edge_cents"]),
                peak_edge_cents=Decimal(row["peak_edge_cents"]),
                max_size=Decimal(row["max_size"]),
                weighted_sum=Decimal(row["weighted_sum"]),
            )
            self._open[span.key] = span
