"""Pair fixtures (import/export round trip, errors that name the pair and the field) and
discovery (close-time window, fuzzy titles, ranking)."""

import json
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest

from ingest.discovery import (
    KalshiListing,
    PolymarketListing,
    kalshi_listings,
    one_to_one,
    polymarket_listings,
    propose_pairs,
)
from ingest.models import MarketPair
from ingest.pairs import (
    PairFixtureError,
    export_pairs,
    import_pairs,
    import_pairs_file,
    load_fixture,
    spec_of,
)

DEMO_FIXTURE = Path(__file__).resolve().parents[2] / "ingest" / "fixtures" / "demo_pairs.yaml"


def good_pair(**overrides):
    row = {
        "opportunity_key": "FED-DEC-CUT",
        "title": "Fed cuts in December",
        "kalshi_ticker": "KXFEDDECISION-26DEC-C25",
        "kalshi_close_time": "2026-12-09T19:00:00Z",
        "poly_yes_token": "1111",
        "poly_no_token": "2222",
        "poly_close_time": "2026-12-09T20:00:00Z",
    }
    row.update(overrides)
    return row


@pytest.mark.django_db
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_export_then_import_gives_back_the_same_pairs(tmp_path, fmt):
    result = import_pairs_file(path=DEMO_FIXTURE)
    assert result.created == ["FED-DEC-CUT", "BTC-150K-2026", "NYC-SNOW-JAN"]
    exported = export_pairs(fmt=fmt)
    MarketPair.objects.all().delete()

    path = tmp_path / f"pairs.{fmt}"
    path.write_text(exported)
    import_pairs_file(path=path)

    assert export_pairs(fmt=fmt) == exported
    btc = MarketPair.objects.get(opportunity_key="BTC-150K-2026")
    assert btc.poly_yes_token.startswith("2716800872")  # long ids stay exact strings
    assert btc.kalshi_close_time == datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert btc.kalshi_fee_rate == D("0.07")


@pytest.mark.django_db
def test_importing_again_updates_pairs_by_opportunity_key():
    import_pairs(rows=[good_pair()])
    result = import_pairs(rows=[good_pair(title="New title", active=False)])
    assert result.updated == ["FED-DEC-CUT"] and result.created == []
    pair = MarketPair.objects.get()
    assert (pair.title, pair.active) == ("New title", False)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"poly_no_token": None}, "pair 1 (FED-DEC-CUT): poly_no_token: required"),
        ({"kalshi_close_time": "next tuesday"}, "pair 1 (FED-DEC-CUT): kalshi_close_time: not an ISO 8601"),
        (
            {"kalshi_fee_rate": "2"},
            "pair 1 (FED-DEC-CUT): kalshi_fee_rate: must be less than or equal to 1 (accepted: a decimal "
            "number from 0 to 1, at most 4 decimal places), got '2'",
        ),
        ({"poly_fee_rate": "lots"}, "pair 1 (FED-DEC-CUT): poly_fee_rate: must be a decimal number"),
        ({"poly_fee_rate": "7e-2"}, "pair 1 (FED-DEC-CUT): poly_fee_rate: must be a decimal number"),
        ({"alignment_tolerance_s": -1}, "pair 1 (FED-DEC-CUT): alignment_tolerance_s: must be greater"),
        ({"opportunity_key": "has spaces"}, "pair 1 (has spaces): opportunity_key: letters, digits"),
        ({"kalshi_tickr": "X"}, "pair 1 (FED-DEC-CUT): kalshi_tickr: unknown field"),
        ({"poly_no_token": "1111"}, "pair 1 (FED-DEC-CUT): poly_no_token: must differ from poly_yes_token"),
        ({"active": "yes"}, "pair 1 (FED-DEC-CUT): active: expected true or false"),
        (
            {"poly_close_time": "2026-12-20T00:00:00Z"},
            "pair 1 (FED-DEC-CUT): poly_close_time: 882000 s from kalshi_close_time",
        ),
    ],
)
def test_a_bad_pair_is_refused_with_an_error_naming_the_pair_and_the_field(overrides, message):
    with pytest.raises(PairFixtureError) as caught:
        import_pairs(rows=[good_pair(**overrides)])
    assert any(error.startswith(message) for error in caught.value.errors), caught.value.errors


@pytest.mark.django_db
def test_one_bad_pair_means_nothing_is_imported_and_every_problem_is_listed():
    rows = [good_pair(), good_pair(opportunity_key="B", kalshi_ticker=""), good_pair()]
    with pytest.raises(PairFixtureError) as caught:
        import_pairs(rows=rows)
    assert caught.value.errors == [
        "pair 2 (B): kalshi_ticker: required",
        "pair 3 (FED-DEC-CUT): opportunity_key: duplicate of pair 1",
    ]
    assert MarketPair.objects.count() == 0


def test_a_file_that_is_not_a_list_of_pairs_is_a_clear_error(tmp_path):
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps({"opportunity_key": "X"}))
    with pytest.raises(PairFixtureError, match="expected a list of pairs"):
        load_fixture(path)
    path.write_text("[{")
    with pytest.raises(PairFixtureError, match="not valid JSON"):
        load_fixture(path)


@pytest.mark.django_db
def test_a_pair_becomes_the_detectors_pair_spec_with_its_fee_rates():
    import_pairs(rows=[good_pair(poly_fee_rate="0.03")])
    spec = spec_of(MarketPair.objects.get(), max_skew_ms=500)
    assert (spec.kalshi_fees.rate, spec.poly_fees.rate, spec.max_skew_ms) == (D("0.07"), D("0.03"), 500)


# --- discovery ------------------------------------------------------------------------------------


def at(day, hour=0):
    return datetime(2026, 12, day, hour, tzinfo=UTC)


def kalshi(ticker, title, close):
    return KalshiListing(ticker, title, close)


def poly(cid, title, close):
    return PolymarketListing(cid, title, close, f"{cid}-yes", f"{cid}-no")


def test_discovery_ranks_the_closest_title_first_and_drops_far_close_times():
    kalshi_markets = [
        kalshi("KXBTC-26DEC31-T150000", "Will Bitcoin reach $150,000 by the end of 2026?", at(31, 23))
    ]
    poly_markets = [
        poly("eth", "Will Ethereum reach $10,000 by the end of 2026?", at(31, 23)),
        poly("btc", "Will Bitcoin reach $150,000 by end of 2026?", at(31, 20)),
        poly("btc-early", "Will Bitcoin reach $150,000 by the end of 2026?", at(1)),  # 30 days off
        poly("rain", "Rain in Paris on New Year's Eve?", at(31, 23)),
    ]

    candidates = propose_pairs(kalshi_markets, poly_markets, tolerance_s=2 * 86400, min_score=60)

    assert [c.polymarket.condition_id for c in candidates] == ["btc", "eth"]
    assert candidates[0].title_score > candidates[1].title_score
    assert candidates[0].close_gap_s == 3 * 3600
    fixture = candidates[0].as_fixture()
    assert fixture["opportunity_key"] == "KXBTC-26DEC31-T150000"
    assert (fixture["poly_yes_token"], fixture["poly_no_token"]) == ("btc-yes", "btc-no")


def test_equal_titles_rank_by_the_smaller_close_time_gap_and_known_pairs_are_flagged():
    kalshi_markets = [kalshi("K1", "Snow in NYC in January", at(1, 5))]
    poly_markets = [
        poly("far", "Snow in NYC in January", at(2, 5)),
        poly("near", "Snow in NYC in January", at(1, 6)),
    ]
    candidates = propose_pairs(kalshi_markets, poly_markets, known=[("K1", "far-yes", "far-no")])
    assert [(c.polymarket.condition_id, c.known) for c in candidates] == [("near", False), ("far", True)]
    assert len(one_to_one(candidates)) == 1


def test_market_lists_are_read_in_the_venues_own_shapes():
    kalshi_data = {
        "markets": [
            {"ticker": "K1", "title": "A?", "close_time": "2026-12-01T00:00:00Z", "status": "active"},
            {"ticker": "K2", "title": "B?", "close_time": "2026-12-01T00:00:00Z", "status": "finalized"},
        ]
    }
    poly_data = {
        "data": [
            {
                "condition_id": "0xabc",
                "question": "A?",
                "end_date_iso": "2026-12-01T00:00:00Z",
                "tokens": [{"token_id": "1", "outcome": "Yes"}, {"token_id": "2", "outcome": "No"}],
            },
            {
                "condition_id": "0xdef",
                "question": "Who wins?",
                "end_date_iso": "2026-12-01T00:00:00Z",
                "tokens": [{"token_id": "3", "outcome": "Alice"}, {"token_id": "4", "outcome": "Bob"}],
            },
        ]
    }
    assert [m.ticker for m in kalshi_listings(kalshi_data)] == ["K1"]
    listings = polymarket_listings(poly_data)
    assert [(p.yes_token, p.no_token) for p in listings] == [("1", "2")]


@pytest.mark.django_db
def test_a_discovered_candidate_imports_as_a_pair():
    candidate = propose_pairs(
        [kalshi("KXSNOW-26JAN", "Snow in NYC in January", at(1, 5))],
        [poly("0xsnow", "Snow in NYC in January?", at(1, 6))],
    )[0]
    assert import_pairs(rows=[candidate.as_fixture()]).created == ["KXSNOW-26JAN"]
