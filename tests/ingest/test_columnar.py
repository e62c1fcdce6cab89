"""The columnar cache of a recording and the column-wise detector pass: the same candidates, spans
and kept books as the streaming pass over the same recording, whatever the threshold, the window,
the pairs or the file's row groups; the cache is made once and made again when the recording
changes."""

import os
import random
import shutil
from dataclasses import replace
from decimal import Decimal as D
from pathlib import Path

import pytest

from ingest import columnar
from ingest.columnar import ColumnarError, fast_pass
from ingest.columnar_file import book_updates, columnar_path, ensure_columnar, read_metadata
from ingest.detector_pass import DetectorPass, OutsideWindow, pair_book_keys, run_pass
from ingest.recording import (
    RecordingWriter,
    kalshi_update,
    pairs_of,
    polymarket_update,
    read_recording,
)
from ingest.sources import updates_to_book_updates
from ingest.synthetic import generate, iter_updates, synthetic_pairs

BUNDLED = Path(__file__).resolve().parents[2] / "ingest" / "data" / "demo_recording.jsonl.gz"


def _streaming(path: Path, pairs=None, *, threshold_cents: D, window_ms: int) -> DetectorPass:
    header, updates = read_recording(path)
    pairs = pairs_of(header) if pairs is None else pairs
    return run_pass(
        updates_to_book_updates(updates, pairs), pairs, threshold_cents=threshold_cents, window_ms=window_ms
    )


def _book_or_refusal(books, key, at_ms, upto_line=None):
    try:
        return books.book_at(*key, at_ms, upto_line=upto_line)
    except OutsideWindow:
        return "outside"


def assert_same_pass(streaming: DetectorPass, fast: DetectorPass) -> None:
    assert (fast.updates, fast.first_ms, fast.last_ms) == (
        streaming.updates,
        streaming.first_ms,
        streaming.last_ms,
    )
    assert fast.spans == streaming.spans
    assert len(fast.candidates) == len(streaming.candidates)
    pairs = {pair.opportunity_key: pair for pair in streaming.pairs}
    for ours, theirs in zip(fast.candidates, streaming.candidates, strict=True):
        assert ours == theirs  # evaluation (best quote, legs, directions, rejections), span, line
        assert ours.evaluation.best.books_used == theirs.evaluation.best.books_used
        window = streaming.window_ms
        at_ms = theirs.evaluation.at_ms
        for key in pair_book_keys(pairs[theirs.evaluation.opportunity_key]):
            for when in (at_ms - 1, at_ms, at_ms + window // 3, at_ms + window, at_ms + window + 1):
                assert _book_or_refusal(fast.books, key, when) == _book_or_refusal(streaming.books, key, when)
            assert _book_or_refusal(fast.books, key, at_ms, theirs.line) == _book_or_refusal(
                streaming.books, key, at_ms, theirs.line
            )
    assert fast.books.size == streaming.books.size


@pytest.fixture
def bundled(tmp_path: Path) -> Path:
    """The bundled recording, copied so that its cache is written beside the copy."""
    path = tmp_path / BUNDLED.name
    shutil.copyfile(BUNDLED, path)
    return path


@pytest.mark.parametrize(
    ("threshold_cents", "window_ms"), [(D(2), 5_000), (D("0.5"), 15_000), (D(6), 1_000), (D(0), 5_000)]
)
def test_the_column_wise_pass_over_the_bundled_recording_equals_the_streaming_pass(
    bundled, threshold_cents, window_ms
):
    fast = fast_pass(
        bundled, pairs_of(read_recording(bundled)[0]), threshold_cents=threshold_cents, window_ms=window_ms
    )
    streaming = _streaming(bundled, threshold_cents=threshold_cents, window_ms=window_ms)
    assert streaming.candidates and streaming.spans  # the recording has something to find
    assert_same_pass(streaming, fast)
    # It got there by evaluating a small part of the updates.
    assert fast.detector.counters["evaluations"] < streaming.detector.counters["evaluations"] / 4


def test_a_generated_recording_in_many_row_groups_and_chunks_gives_the_same_pass(tmp_path, monkeypatch):
    path = tmp_path / "three-hours.jsonl.gz"
    generate(path, pairs=2, hours=3.0, seed=5, updates_per_s=1.0)
    # Small row groups and column-wise steps: books, spans and windows carried across many of them.
    monkeypatch.setattr(columnar, "ROWS_PER_CHUNK", 7_000)
    ensure_columnar(path, rows_per_group=1_500)
    pairs = pairs_of(read_recording(path)[0])
    fast = fast_pass(path, pairs, threshold_cents=D(2), window_ms=20_000)
    assert_same_pass(_streaming(path, threshold_cents=D(2), window_ms=20_000), fast)


def test_a_pass_over_some_of_the_recordings_pairs_reads_their_updates_only(bundled):
    pairs = pairs_of(read_recording(bundled)[0])[1:]
    fast = fast_pass(bundled, pairs, threshold_cents=D(2), window_ms=5_000)
    streaming = _streaming(bundled, pairs, threshold_cents=D(2), window_ms=5_000)
    assert streaming.updates < 39_000  # the other pair's Polymarket updates are not read, nor numbered
    assert_same_pass(streaming, fast)


def test_pairs_that_share_an_instrument_give_the_same_pass(tmp_path):
    first, second = synthetic_pairs(2, seed=4)
    pairs = [first, replace(second, kalshi_ticker=first.kalshi_ticker)]  # one Kalshi market, two pairs
    path = tmp_path / "shared.jsonl.gz"
    with RecordingWriter(path, pairs=pairs, source="test") as writer:
        for update in iter_updates(pairs, hours=1.0, seed=4, updates_per_s=1.0):
            writer.append(update)
    fast = fast_pass(path, pairs, threshold_cents=D(2), window_ms=5_000)
    streaming = _streaming(path, threshold_cents=D(2), window_ms=5_000)
    assert {c.evaluation.opportunity_key for c in streaming.candidates} == {p.opportunity_key for p in pairs}
    assert_same_pass(streaming, fast)


def test_pairs_the_recording_does_not_hold_are_refused(bundled):
    stranger = synthetic_pairs(1, seed=99)
    with pytest.raises(ColumnarError, match="not one of the recording's pairs' tokens"):
        fast_pass(bundled, stranger, threshold_cents=D(2), window_ms=5_000)


@pytest.mark.slow
def test_a_generated_week_gives_the_same_pass(tmp_path):
    path = tmp_path / "week.jsonl.gz"
    generate(path, pairs=1, hours=7 * 24, seed=3, updates_per_s=0.01)
    pairs = pairs_of(read_recording(path)[0])
    fast = fast_pass(path, pairs, threshold_cents=D(2), window_ms=10_000)
    assert_same_pass(_streaming(path, threshold_cents=D(2), window_ms=10_000), fast)


def _irregular_recording(path: Path, times: list[int]) -> None:
    """Ladders as venues may send them: unsorted, repeated and empty levels, thin tops, prices
    written with different numbers of places, a book without asks; edges in both directions that
    come and go, and one that goes stale."""
    pairs = synthetic_pairs(1, seed=1)
    pair = pairs[0]
    kalshi, yes, no = pair.kalshi_ticker, pair.poly_yes_token, pair.poly_no_token
    lines = [
        kalshi_update(times[0], kalshi, [("0.40", "5"), ("0.4500", "0.5")], [("0.52", "10")]),
        polymarket_update(
            times[1],
            no,
            [("0.40", "3")],
            [("0.46", "0.4"), ("0.47", "20"), ("0.470", "5"), ("0.6", "0")],
            venue_ts_ms=times[1] - 30,
        ),
        polymarket_update(times[2], yes, [("0.40", "7")], [("0.51", "9")]),
        kalshi_update(times[3], kalshi, [("0.40", "5")], []),
        kalshi_update(times[4], kalshi, [("0.3", "50"), ("0.41", "12.5")], [("0.53", "40.00")]),
        polymarket_update(times[5], no, [], [("0.50", "100")], venue_ts_ms=times[5]),
        kalshi_update(times[6], kalshi, [("0.49", "10")], [("0.50", "10")]),
        polymarket_update(times[7], yes, [("0.30", "5")], [("0.41", "8"), ("0.40", "30")]),
        kalshi_update(times[8], kalshi, [("0.49", "10")], [("0.50", "10")]),
    ]
    with RecordingWriter(path, pairs=pairs, source="test") as writer:
        for line in lines:
            writer.append(line)


IN_ORDER = [1_000, 1_200, 1_300, 2_500, 2_600, 4_000, 4_100, 4_300, 16_000]
BACKWARDS = [1_000, 1_200, 900, 2_500, 2_400, 4_000, 4_100, 3_000, 16_000]  # times going back


def test_the_columnar_file_gives_back_the_very_books_of_the_recording(tmp_path):
    path = tmp_path / "irregular.jsonl.gz"
    _irregular_recording(path, IN_ORDER)
    header, updates = read_recording(path)
    expected = list(updates_to_book_updates(updates, pairs_of(header)))
    got = list(book_updates(ensure_columnar(path)))
    assert [(u.now_ms, u.books) for u in got] == [(u.now_ms, u.books) for u in expected]
    # Every Decimal as recorded, places included ("0.4500" stays "0.4500", "0.470" stays "0.470").
    assert [
        [str(level.price) + "/" + str(level.size) for b in u.books for level in b.bids + b.asks] for u in got
    ] == [
        [str(level.price) + "/" + str(level.size) for b in u.books for level in b.bids + b.asks]
        for u in expected
    ]


@pytest.mark.parametrize("times", [IN_ORDER, BACKWARDS])
def test_irregular_books_and_times_give_the_same_pass(tmp_path, times):
    path = tmp_path / "irregular.jsonl.gz"
    _irregular_recording(path, times)
    pairs = pairs_of(read_recording(path)[0])
    for threshold in (D(-5), D(0), D(1), D(4)):
        fast = fast_pass(path, pairs, threshold_cents=threshold, window_ms=1_500)
        streaming = _streaming(path, threshold_cents=threshold, window_ms=1_500)
        assert streaming.candidates
        assert_same_pass(streaming, fast)


def _random_recording(path: Path, rng: random.Random) -> None:
    """Two pairs (one sharing the other's Kalshi market), books near 50 cents so that edges open
    and close often, gaps up to a few seconds (sweeps, staleness, skew), thin and empty ladders."""
    first, second = synthetic_pairs(2, seed=rng.randrange(1000))
    pairs = [first, replace(second, kalshi_ticker=first.kalshi_ticker, max_age_ms=rng.choice((1500, 10_000)))]

    def ladder(low: int, high: int) -> list[tuple[str, str]]:
        prices = rng.sample(range(low, high), rng.randint(0, 3))
        return [(f"0.{p:02d}", rng.choice(("0.5", "1", "3", "12.50", "40"))) for p in prices]

    t_ms = 1_000
    with RecordingWriter(path, pairs=pairs, source="test") as writer:
        for _ in range(rng.randint(50, 400)):
            t_ms += rng.choice((0, 0, 5, 200, 900, 1_000, 1_700, 4_000))
            pair = rng.choice(pairs)
            kind = rng.random()
            if kind < 0.4:
                writer.append(kalshi_update(t_ms, pair.kalshi_ticker, ladder(40, 56), ladder(40, 56)))
            else:
                token = pair.poly_yes_token if kind < 0.7 else pair.poly_no_token
                stamp = t_ms - rng.choice((0, 50, 2_500)) if rng.random() < 0.8 else None
                writer.append(
                    polymarket_update(t_ms, token, ladder(35, 50), ladder(44, 60), venue_ts_ms=stamp)
                )


@pytest.mark.parametrize("seed", range(12))
def test_random_recordings_give_the_same_pass(tmp_path, monkeypatch, seed):
    rng = random.Random(seed)
    path = tmp_path / "random.jsonl.gz"
    _random_recording(path, rng)
    monkeypatch.setattr(columnar, "ROWS_PER_CHUNK", rng.choice((40, 100, 100_000)))
    ensure_columnar(path, rows_per_group=rng.choice((7, 30, 1_000)))
    pairs = pairs_of(read_recording(path)[0])
    for threshold in (D(-3), D(0), D("1.5"), D(4)):
        window_ms = rng.choice((0, 800, 3_000))
        fast = fast_pass(path, pairs, threshold_cents=threshold, window_ms=window_ms)
        assert_same_pass(_streaming(path, threshold_cents=threshold, window_ms=window_ms), fast)


def test_the_cache_is_made_once_and_again_when_the_recording_changes(tmp_path):
    path = tmp_path / "day.jsonl.gz"
    generate(path, pairs=1, hours=0.1, seed=1)
    cache = ensure_columnar(path)
    assert cache == columnar_path(path) == tmp_path / "day.columnar.parquet"
    made = cache.stat().st_mtime_ns
    assert ensure_columnar(path) == cache
    assert cache.stat().st_mtime_ns == made  # reused, not converted again
    first = fast_pass(path, pairs_of(read_recording(path)[0]), threshold_cents=D(2), window_ms=1)
    assert read_metadata(cache)["updates"] == first.updates

    generate(path, pairs=2, hours=0.1, seed=2)  # the same name, another recording
    os.utime(path, ns=(made + 1_000_000_000, made + 1_000_000_000))
    pairs = pairs_of(read_recording(path)[0])
    fast = fast_pass(path, pairs, threshold_cents=D(2), window_ms=5_000)
    assert read_metadata(cache)["header"]["pairs"][1]["opportunity_key"] == pairs[1].opportunity_key
    assert_same_pass(_streaming(path, threshold_cents=D(2), window_ms=5_000), fast)

    cache.write_bytes(b"not parquet")  # a damaged cache is made again, not trusted
    assert read_metadata(ensure_columnar(path))["updates"] == fast.updates
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
