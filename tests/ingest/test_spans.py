"""Success spans: open at the threshold, track the peak and time-weighted mean, close, survive restarts."""

import json
from decimal import Decimal as D

from exchanges.books import KALSHI, NO, POLYMARKET, YES, kalshi_books, polymarket_book
from exchanges.fees import kalshi_taker_schedule, polymarket_taker_schedule
from ingest.detector import KALSHI_YES_POLY_NO, POLY_YES_KALSHI_NO, PairSpec, evaluate
from ingest.spans import SpanClosed, SpanOpened, SpanTracker, SpanUpdated

TICKER = "KXFEDDECISION-26DEC-C25"
PAIR = PairSpec(
    "FED-DEC-CUT", TICKER, "1001", "1002", kalshi_taker_schedule(TICKER), polymarket_taker_schedule()
)


def evaluation_with_edge(at_ms, edge_cents, *, reverse=False, book_ts_ms=None):
    """A real evaluation whose best 1-contract net edge is `edge_cents`.

    Kalshi YES ask 0.45 (1-contract fee 2c) + Polymarket NO ask (53 - edge)c: 100 - 45 - 53 + edge - 2.
    With reverse=True the same edge is on Polymarket YES + Kalshi NO instead.
    """
    ts = at_ms if book_ts_ms is None else book_ts_ms
    other_cents = 53 - edge_cents
    # The Kalshi side we buy asks 0.45 (the other side bids 0.55); the other side asks 0.90.
    bids = ([(D("0.10"), D(50))], [(D("0.55"), D(50))])
    yes_bids, no_bids = reversed(bids) if reverse else bids
    kalshi = kalshi_books(TICKER, yes_bids, no_bids, received_ts_ms=ts)
    cheap = [(D(other_cents) / 100, D(80))]
    dear = [(D("0.90"), D(80))]
    poly_yes = polymarket_book("1001", YES, [], cheap if reverse else dear, received_ts_ms=ts)
    poly_no = polymarket_book("1002", NO, [], dear if reverse else cheap, received_ts_ms=ts)
    books = {
        (KALSHI, TICKER, YES): kalshi[YES],
        (KALSHI, TICKER, NO): kalshi[NO],
        (POLYMARKET, "1001", YES): poly_yes,
        (POLYMARKET, "1002", NO): poly_no,
    }
    return evaluate(PAIR, books, now_ms=at_ms)


def feed(tracker, script):
    events = []
    for at_ms, edge in script:
        events.extend(tracker.on_evaluation(evaluation_with_edge(at_ms, edge)))
    return events


def test_a_span_opens_at_the_threshold_and_closes_below_it_with_peak_and_time_weighted_mean():
    tracker = SpanTracker(threshold_cents=D(2))
    events = feed(tracker, [(0, 1), (1000, 3), (2000, 5), (4000, 2), (5000, 1)])
    opened, updated, closed = events
    assert opened == SpanOpened(
        "FED-DEC-CUT", "FED-DEC-CUT:kalshi_yes_poly_no:1000", KALSHI_YES_POLY_NO, 1000, D("3.0000"), D(50)
    )
    assert isinstance(updated, SpanUpdated)
    assert (updated.at_ms, updated.peak_edge_cents) == (2000, D("5.0000"))
    assert isinstance(closed, SpanClosed)
    assert (closed.start_ms, closed.end_ms, closed.reason) == (1000, 5000, "below_threshold")
    assert closed.peak_edge_cents == D("5.0000")
    # 3c for 1 s, 5c for 2 s, 2c for 1 s: (3000 + 10000 + 2000) / 4000 ms = 3.75c.
    assert closed.mean_edge_cents == D("3.7500")
    assert closed.max_size == D(50)
    assert tracker.open_keys() == []


def test_an_edge_staying_above_the_threshold_without_a_new_peak_is_quiet():
    tracker = SpanTracker(threshold_cents=D(2))
    feed(tracker, [(0, 4)])
    assert feed(tracker, [(100, 3), (200, 4), (300, 2)]) == []
    assert tracker.open_span_key("FED-DEC-CUT") == "FED-DEC-CUT:kalshi_yes_poly_no:0"


def test_a_side_going_stale_closes_the_span():
    tracker = SpanTracker(threshold_cents=D(2))
    feed(tracker, [(0, 4)])
    [closed] = tracker.on_evaluation(evaluation_with_edge(20_000, 4, book_ts_ms=0))
    assert (closed.reason, closed.end_ms, closed.mean_edge_cents) == ("stale", 20_000, D("4.0000"))


def test_the_edge_moving_to_the_other_direction_closes_one_span_and_opens_another():
    tracker = SpanTracker(threshold_cents=D(2))
    feed(tracker, [(0, 3)])
    closed, opened = tracker.on_evaluation(evaluation_with_edge(500, 3, reverse=True))
    assert (closed.direction, closed.reason, closed.end_ms) == (KALSHI_YES_POLY_NO, "direction_changed", 500)
    assert (opened.direction, opened.start_ms) == (POLY_YES_KALSHI_NO, 500)


def test_a_span_that_closes_as_it_opens_has_the_mean_of_its_only_edge():
    tracker = SpanTracker(threshold_cents=D(2))
    events = feed(tracker, [(700, 6), (700, 0)])
    assert events[-1].mean_edge_cents == D("6.0000")
    assert events[-1].end_ms == events[-1].start_ms == 700


def test_open_spans_survive_a_restart_as_if_nothing_happened():
    script_before, script_after = [(0, 3), (1000, 6)], [(3000, 4), (4000, 1)]
    uninterrupted = SpanTracker(threshold_cents=D(2))
    expected = feed(uninterrupted, script_before + script_after)[-1]

    first = SpanTracker(threshold_cents=D(2))
    feed(first, script_before)
    saved = json.loads(json.dumps(first.export_open()))  # what a database or file would keep
    second = SpanTracker(threshold_cents=D(2))
    second.restore(saved)
    assert second.open_span_key("FED-DEC-CUT") == "FED-DEC-CUT:kalshi_yes_poly_no:0"
    assert feed(second, script_after)[-1] == expected
    # 3c for 1 s, 6c for 2 s, 4c for 1 s over 4 s = 4.75c.
    assert expected.mean_edge_cents == D("4.7500")


def test_close_all_ends_every_open_span():
    tracker = SpanTracker(threshold_cents=D(2))
    feed(tracker, [(0, 3)])
    [closed] = tracker.close_all(2000)
    assert (closed.end_ms, closed.reason) == (2000, "shutdown")
    assert tracker.open_keys() == []
