"""Shards: several ingest processes share the active pairs, each owning a stable subset (the
split itself is pure), chosen with ingest_run --shard I/N or INGEST_SHARD=I/N for the Celery tick."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from exchanges.double import ExchangeDouble
from exchanges.testing import paired_markets_scenario
from ingest import live
from ingest.models import MarketPair
from ingest.shards import EVERY_PAIR, Shard, parse_shard, shard_pairs
from ingest.tasks import live_tick

KEYS = [f"PAIR-{n:04d}" for n in range(1000)]


class Keyed:
    def __init__(self, key):
        self.opportunity_key = key


KEYS_AS_PAIRS = [Keyed(key) for key in KEYS]


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_the_shards_of_a_split_own_every_pair_exactly_once(count):
    owners = {key: [i for i in range(1, count + 1) if Shard(i, count).owns(key)] for key in KEYS}

    assert all(len(shards) == 1 for shards in owners.values())
    sizes = [sum(1 for shards in owners.values() if shards == [i]) for i in range(1, count + 1)]
    assert min(sizes) > 0.7 * len(KEYS) / count  # a fair share each, not one shard with most


def test_a_pair_belongs_to_the_same_shard_in_every_process_and_run():
    # CRC-32 of the key, fixed here: Python's hash() of a string would change between processes.
    assert [i for i in (1, 2, 3) if Shard(i, 3).owns("FED-DEC-CUT")] == [3]
    assert [i for i in (1, 2, 3) if Shard(i, 3).owns("BTC-150K-2026")] == [2]
    assert [i for i in (1, 2, 3) if Shard(i, 3).owns("PAIR-0000")] == [2]


@pytest.mark.parametrize("text", ["2/3", " 2/3 "])
def test_a_shard_is_written_i_of_n(text):
    assert parse_shard(text) == Shard(2, 3)
    assert str(parse_shard(text)) == "2/3"
    assert shard_pairs(KEYS_AS_PAIRS, EVERY_PAIR) == KEYS_AS_PAIRS


@pytest.mark.parametrize("text", ["", "2", "0/2", "3/2", "1/0", "a/b", "-1/2", "1/2/3", "1/2000"])
def test_a_bad_shard_is_refused_saying_what_is_expected(text):
    with pytest.raises(ValueError, match="I/N"):
        parse_shard(text)


# --- ingest_run and the Celery tick ----------------------------------------------------------


def run(*args):
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_ingest_run_names_the_shard_option_when_it_is_bad_or_misplaced(tmp_path):
    MarketPair.objects.create(
        opportunity_key="FED-DEC-CUT", kalshi_ticker="K", poly_yes_token="1", poly_no_token="2"
    )
    with pytest.raises(CommandError, match=r"--shard.*expected I/N"):
        run("ingest_run", "--live", "--shard", "3/2")
    with pytest.raises(CommandError, match="--shard: applies to --live only"):
        run("ingest_run", "--replay", str(tmp_path / "r.jsonl.gz"), "--shard", "1/2")
    with pytest.raises(CommandError, match="--shard: shard 1/3 owns none of the active pairs"):
        run("ingest_run", "--live", "--shard", "1/3", "--double-url", "http://127.0.0.1:9")


@pytest.fixture
def double():
    scenario, _ = paired_markets_scenario(6)
    with ExchangeDouble(scenario) as running:
        yield running


@pytest.mark.django_db
def test_each_celery_tick_of_a_shard_polls_its_own_pairs_only(monkeypatch, settings, double):
    settings.INGEST_SHARDS = 2
    _, instruments = paired_markets_scenario(6)
    for n, (ticker, yes, no) in enumerate(instruments):
        MarketPair.objects.create(
            opportunity_key=f"PAIR-{n}", kalshi_ticker=ticker, poly_yes_token=yes, poly_no_token=no
        )
    monkeypatch.setenv("INGEST_LIVE", "1")
    monkeypatch.setenv("INGEST_DOUBLE_URL", double.base_url)
    owned = {}
    for shard in ("1/2", "2/2"):
        monkeypatch.setenv("INGEST_SHARD", shard)
        monkeypatch.setattr(live, "_live", None)  # a fresh worker process
        result = live_tick()
        owned[shard] = {pair.opportunity_key for pair in live._live.source.pairs}
        assert result["shard"] == shard
        assert result["pairs"] == len(owned[shard]) > 0
        assert result["updates"] == 3 * len(owned[shard])  # its markets and tokens, no other

    assert owned["1/2"].isdisjoint(owned["2/2"])
    assert owned["1/2"] | owned["2/2"] == {f"PAIR-{n}" for n in range(6)}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("two", "INGEST_SHARD: expected I/N"),
        ("1/3", "INGEST_SHARD: 1/3 is one of 3 shards, but INGEST_SHARDS is 2"),
    ],
)
def test_a_bad_ingest_shard_stops_the_tick_naming_the_variable(monkeypatch, settings, value, message):
    settings.INGEST_SHARDS = 2
    monkeypatch.setenv("INGEST_LIVE", "1")
    monkeypatch.setenv("INGEST_SHARD", value)
    monkeypatch.setattr(live, "_live", None)
    with pytest.raises(ValueError, match=message):
        live_tick()
