"""The ingest commands end to end: record from the exchange double, replay through ingest_run,
pair import/export/discovery, the synthetic generator, and the Celery tick's INGEST_LIVE switch."""

import io
import json
import threading
from decimal import Decimal as D

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from exchanges.double import ExchangeDouble, Scenario
from ingest import live
from ingest.detector import Detector
from ingest.models import MarketPair, SuccessSpan
from ingest.recording import pairs_of, read_recording, to_book, token_sides
from ingest.services import datetime_of_ms
from ingest.spans import SpanClosed, SpanTracker
from ingest.tasks import live_tick

pytestmark = pytest.mark.django_db
TICKER = "FED-25DEC-T4.00"
CONDITION = "0x" + "a1" * 32


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def double():
    with ExchangeDouble(Scenario.demo()) as running:
        yield running


@pytest.fixture
def fed_pair(double):
    books = double.state.snapshot().polymarket_books
    yes, no = [token for token, book in books.items() if book.market == CONDITION]
    return MarketPair.objects.create(
        opportunity_key="FED", kalshi_ticker=TICKER, poly_yes_token=yes, poly_no_token=no
    )


class MovingMarket:
    """Keeps the double's Polymarket books freshly stamped (as a venue stamps each book) and takes
    the FED pair's edge away and back: YES on Kalshi at 0.45 + NO on Polymarket at 0.50 is 3c."""

    def __init__(self, double, no_token):
        self.state, self.no_token = double.state, no_token
        self.stop = threading.Event()
        self.original = double.state.snapshot().polymarket_books
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        tick = 0
        while not self.stop.wait(0.05):
            tick += 1
            edge_gone = (tick // 8) % 2 == 1  # 0.4 s with the edge, 0.4 s without, ...
            for token, book in self.original.items():
                asks = [["0.60", "100"]] if token == self.no_token and edge_gone else book.asks
                self.state.set_polymarket_book(token, book.bids, asks)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def spans_of_direct_replay(path, threshold=D(1)):
    """The pure core alone over the recording: what ingest_run must have stored."""
    header, updates = read_recording(path)
    pairs = pairs_of(header)
    detector, tracker, sides = Detector(pairs), SpanTracker(threshold), token_sides(pairs)
    closed, last_ms = [], 0
    for update in updates:
        last_ms = update["t"]
        for evaluation in detector.on_books(to_book(update, sides), update["t"]):
            closed += [e for e in tracker.on_evaluation(evaluation) if isinstance(e, SpanClosed)]
    closed += tracker.close_all(last_ms, "end_of_replay")
    return sorted((c.span_key, c.peak_edge_cents, datetime_of_ms(c.end_ms), c.reason) for c in closed)


@pytest.mark.slow
def test_a_recording_of_the_double_replays_through_ingest_run_to_the_same_spans(tmp_path, double, fed_pair):
    path = tmp_path / "fed.jsonl.gz"
    with MovingMarket(double, fed_pair.poly_no_token):
        output = run(
            "record", "--out", str(path), "--duration-s", "2", "--poll-interval-s", "0.1",
            "--double-url", double.base_url, "--pairs", "FED",
        )  # fmt: skip
    assert "wrote" in output and "updates" in output
    header, updates = read_recording(path)
    assert [p.opportunity_key for p in pairs_of(header)] == ["FED"]
    assert {u["venue"] for u in updates} == {"kalshi", "polymarket"}

    expected = spans_of_direct_replay(path)
    output = run("ingest_run", "--replay", str(path), "--speed", "max", "--stats-every-s", "0")

    stored = sorted(
        SuccessSpan.objects.values_list("span_key", "peak_edge_cents", "ended_at", "close_reason")
    )
    assert len(expected) >= 2  # the edge went away and came back while recording
    assert stored == expected
    assert f"spans opened {len(expected)}" in output
    assert "updates_per_s=" in output and "pairs_fresh=" in output


@pytest.mark.slow
def test_ingest_run_live_polls_the_double_and_opens_a_span_for_the_crossed_pair(double, fed_pair):
    with MovingMarket(double, "no-such-token"):  # keep the books fresh, never remove the edge
        output = run(
            "ingest_run", "--live", "--double-url", double.base_url, "--duration-s", "0.5",
            "--poll-interval-s", "0.1", "--stats-every-s", "100",
        )  # fmt: skip
    span = SuccessSpan.objects.get()
    assert span.opportunity_key == "FED" and span.is_open  # live: a stop is not the end of the span
    assert span.direction == "kalshi_yes_poly_no" and span.peak_edge_cents == D(3)
    assert "spans opened 1" in output


def test_pairs_import_and_export_commands_round_trip(tmp_path):
    output = run("pairs_import", "ingest/fixtures/demo_pairs.yaml")
    assert output.startswith("3 created, 0 updated")
    exported = tmp_path / "pairs.json"
    run("pairs_export", str(exported))
    rows = json.loads(exported.read_text())
    assert [r["opportunity_key"] for r in rows] == ["BTC-150K-2026", "FED-DEC-CUT", "NYC-SNOW-JAN"]
    assert run("pairs_import", str(exported)).startswith("0 created, 3 updated")
    assert "opportunity_key: NYC-SNOW-JAN" in run("pairs_export", "--key", "NYC-SNOW-JAN")


def test_pairs_import_of_a_bad_file_names_the_pair_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- opportunity_key: X\n  kalshi_ticker: KX\n  poly_yes_token: '1'\n")
    with pytest.raises(CommandError, match=r"pair 1 \(X\): poly_no_token: required"):
        run("pairs_import", str(bad))
    assert MarketPair.objects.count() == 0


def test_pairs_discover_prints_a_ranked_table_and_writes_a_fixture(tmp_path):
    kalshi = tmp_path / "kalshi.json"
    kalshi.write_text(
        json.dumps(
            {"markets": [{"ticker": "KXRAIN-26NOV30", "title": "Rain in Central Park on November 30?",
                          "close_time": "2026-11-30T23:00:00Z", "status": "active"}]}
        )
    )  # fmt: skip
    poly = tmp_path / "poly.json"
    poly.write_text(
        json.dumps(
            {"data": [
                {"condition_id": "0x1", "question": "Will it rain in Central Park on November 30?",
                 "end_date_iso": "2026-12-01T00:00:00Z",
                 "tokens": [{"token_id": "11", "outcome": "Yes"}, {"token_id": "12", "outcome": "No"}]},
                {"condition_id": "0x2", "question": "Will it snow in Central Park on November 30?",
                 "end_date_iso": "2026-12-01T00:00:00Z",
                 "tokens": [{"token_id": "21", "outcome": "Yes"}, {"token_id": "22", "outcome": "No"}]},
            ]}
        )
    )  # fmt: skip
    out = tmp_path / "candidates.yaml"
    output = run(
        "pairs_discover", "--kalshi-markets", str(kalshi), "--polymarket-markets", str(poly),
        "--out", str(out),
    )  # fmt: skip
    lines = output.splitlines()
    assert lines[0] == "1 Kalshi and 2 Polymarket markets -> 2 candidates"
    assert "Will it rain" in lines[2] and "Will it snow" in lines[3]  # ranked best first
    run("pairs_import", str(out))
    assert MarketPair.objects.get().poly_yes_token == "11"


def test_make_recording_is_synthetic_and_reproducible(tmp_path):
    first, second = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    output = run("make_recording", "--out", str(first), "--pairs", "2", "--hours", "0.02", "--seed", "3")
    run("make_recording", "--out", str(second), "--pairs", "2", "--hours", "0.02", "--seed", "3")
    assert "(synthetic)" in output
    assert first.read_bytes() == second.read_bytes()
    header, _ = read_recording(first)
    assert header["source"].startswith("synthetic seed=3")


def test_the_bundled_demo_recording_matches_the_demo_pairs_fixture():
    header, _ = read_recording("ingest/data/demo_recording.jsonl.gz")
    run("pairs_import", "ingest/fixtures/demo_pairs.yaml")
    in_db = {
        p.opportunity_key: (p.kalshi_ticker, p.poly_yes_token, p.poly_no_token)
        for p in MarketPair.objects.all()
    }
    in_recording = {
        p.opportunity_key: (p.kalshi_ticker, p.poly_yes_token, p.poly_no_token) for p in pairs_of(header)
    }
    assert in_db == in_recording
    assert header["source"].startswith("synthetic seed=7")


def test_live_tick_does_nothing_unless_ingest_live_is_enabled(monkeypatch):
    monkeypatch.delenv("INGEST_LIVE", raising=False)
    assert live_tick() == {"skipped": "INGEST_LIVE is not enabled"}


def test_live_tick_polls_the_double_when_enabled(monkeypatch, double, fed_pair):
    monkeypatch.setenv("INGEST_LIVE", "1")
    monkeypatch.setenv("INGEST_DOUBLE_URL", double.base_url)
    monkeypatch.setattr(live, "_live", None)
    with MovingMarket(double, "no-such-token"):
        result = live_tick()
    assert result["updates"] == 3 and result["pairs"] == 1  # one Kalshi market, two tokens
    assert result["spans_open"] == 1
    assert SuccessSpan.objects.get().opportunity_key == "FED"
