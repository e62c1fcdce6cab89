"""The ingest pipeline: scripted books in; SuccessSpan and ExecutionIntent rows out, dispatched on
commit, and open spans and cooldowns surviving a restart."""

from decimal import Decimal as D

import pytest

from ingest.intents import UserThreshold
from ingest.models import ExecutionIntent, SuccessSpan
from ingest.services import IngestPipeline, datetime_of_ms
from tests.ingest.factories import (
    RunningRunFactory,
    kalshi_only_update,
    pair_spec,
    update_with_edge,
)

pytestmark = pytest.mark.django_db
T0 = 1_767_225_600_000


class Dispatched:
    """Stand-in for simulator.intake.intent_arrived / span_started: records what it was given
    and whether the row was already in the database at that moment."""

    def __init__(self, model):
        self.model = model
        self.calls = []

    def __call__(self, row):
        self.calls.append((row.pk, self.model.objects.filter(pk=row.pk).exists()))
        return 1


def make_pipeline(pair, users=(), **options):
    intents, spans = Dispatched(ExecutionIntent), Dispatched(SuccessSpan)
    pipeline = IngestPipeline(
        [pair],
        thresholds=lambda: list(users),
        dispatch_intent=intents,
        dispatch_span=spans,
        **options,
    )
    pipeline.restore()
    return pipeline, intents, spans


def feed(pipeline, pair, script):
    for at_ms, edge in script:
        pipeline.on_update(update_with_edge(pair, T0 + at_ms, edge))


def test_a_span_row_opens_tracks_its_peak_while_open_and_closes_with_a_time_weighted_mean():
    pair = pair_spec()
    pipeline, _, _ = make_pipeline(pair)

    feed(pipeline, pair, [(0, 3)])
    row = SuccessSpan.objects.get()
    assert row.is_open and row.peak_edge_cents == D(3) and row.started_at == datetime_of_ms(T0)

    feed(pipeline, pair, [(1000, 5), (2000, 5)])
    row.refresh_from_db()
    assert row.is_open and row.peak_edge_cents == D(5)  # written while open, throttled

    feed(pipeline, pair, [(3000, 0)])
    row.refresh_from_db()
    assert row.ended_at == datetime_of_ms(T0 + 3000)
    assert row.close_reason == "below_threshold"
    assert row.peak_edge_cents == D(5)
    assert row.mean_edge_cents == D("4.3333")  # 3c for 1 s, 5c for 2 s
    assert row.max_size == D(50)
    assert SuccessSpan.objects.count() == 1


def test_intents_go_only_to_users_whose_own_threshold_is_met_and_who_watch_the_key():
    pair = pair_spec()
    eager = UserThreshold(1, D("3"), D("10"))  # 20 contracts at 3.25c on average: yes
    strict = UserThreshold(2, D("4"), D("10"))  # 3.25c < 4c: no
    elsewhere = UserThreshold(3, D("1"), D("10"), frozenset({"OTHER-KEY"}))
    watching = UserThreshold(4, D("1"), D("100"), frozenset({pair.opportunity_key}))
    users = [RunningRunFactory().user for _ in range(4)]
    thresholds = [
        UserThreshold(u.pk, t.min_net_edge_cents, t.max_leg_usd, t.watched_keys)
        for t, u in zip([eager, strict, elsewhere, watching], users, strict=True)
    ]
    pipeline, _, _ = make_pipeline(pair, thresholds)

    feed(pipeline, pair, [(0, 3)])

    intents = {i.user_id: i for i in ExecutionIntent.objects.all()}
    assert set(intents) == {users[0].pk, users[3].pk}
    small = intents[users[0].pk]
    assert small.size == D(20)  # $10 per leg at 0.50 on Polymarket
    assert small.net_edge_cents == D("3.2500")
    assert small.span.span_key == SuccessSpan.objects.get().span_key
    assert [leg["venue"] for leg in small.legs] == ["kalshi", "polymarket"]
    assert small.books[0]["asks"][0] == {"price": "0.45", "size": "50"}
    assert intents[users[3].pk].size == D(50)  # the whole depth fits in $100


def test_an_opportunity_gets_one_intent_per_user_per_cooldown():
    pair = pair_spec()
    user = RunningRunFactory().user
    pipeline, _, _ = make_pipeline(pair, [UserThreshold(user.pk, D(1), D(10))], cooldown_ms=10_000)

    feed(pipeline, pair, [(0, 3), (1000, 4), (9000, 3)])
    assert ExecutionIntent.objects.count() == 1
    feed(pipeline, pair, [(10_000, 3)])
    assert ExecutionIntent.objects.count() == 2


def test_intents_and_spans_are_stored_before_they_are_dispatched_and_dispatched_on_commit(
    django_capture_on_commit_callbacks,
):
    pair = pair_spec()
    user = RunningRunFactory().user
    pipeline, intents, spans = make_pipeline(pair, [UserThreshold(user.pk, D(1), D(10))])

    with django_capture_on_commit_callbacks() as callbacks:
        feed(pipeline, pair, [(0, 3)])
        assert intents.calls == [] and spans.calls == []  # nothing consumes an uncommitted row

    for callback in callbacks:
        callback()
    intent = ExecutionIntent.objects.get()
    assert intents.calls == [(intent.pk, True)]
    assert spans.calls == [(SuccessSpan.objects.get().pk, True)]


def test_a_span_start_is_dispatched_once_however_long_it_lasts(django_capture_on_commit_callbacks):
    pair = pair_spec()
    pipeline, _, spans = make_pipeline(pair)
    with django_capture_on_commit_callbacks(execute=True):
        feed(pipeline, pair, [(0, 3), (1000, 6), (2000, 4), (3000, 0), (4000, 2)])
    assert len(spans.calls) == 2  # two spans, one start each
    assert SuccessSpan.objects.count() == 2


def test_a_restart_resumes_the_open_span_and_the_cooldowns_from_the_database():
    pair = pair_spec()
    user = RunningRunFactory().user
    users = [UserThreshold(user.pk, D(1), D(10))]
    first, _, _ = make_pipeline(pair, users)
    feed(first, pair, [(0, 3), (1000, 5), (2000, 5)])
    assert ExecutionIntent.objects.count() == 1
    # The process dies here: no finish(), the span stays open in the database.

    second, _, spans = make_pipeline(pair, users)
    assert second.spans.open_keys() == [pair.opportunity_key]
    feed(second, pair, [(3000, 4)])
    assert ExecutionIntent.objects.count() == 1  # still in the first intent's cooldown
    feed(second, pair, [(4000, 0)])

    row = SuccessSpan.objects.get()  # the same span, not a second one
    assert row.span_key == f"{pair.opportunity_key}:kalshi_yes_poly_no:{T0}"
    assert row.ended_at == datetime_of_ms(T0 + 4000)
    assert row.peak_edge_cents == D(5)
    assert row.mean_edge_cents == D("4.2500")  # 3, 5, 5, 4 for a second each
    assert spans.calls == []  # its start was dispatched by the first process


def test_a_side_that_goes_quiet_closes_the_span_once_the_books_are_too_far_apart():
    pair = pair_spec()
    pipeline, _, _ = make_pipeline(pair)
    feed(pipeline, pair, [(0, 3)])
    for at_ms in range(1000, 4001, 1000):  # Kalshi keeps updating, Polymarket is silent
        pipeline.on_update(kalshi_only_update(pair, T0 + at_ms))
    row = SuccessSpan.objects.get()
    assert row.close_reason == "skewed"
    assert row.ended_at == datetime_of_ms(T0 + 3000)  # 3 s apart > max_skew_ms 2000


def test_a_pair_that_goes_silent_closes_its_span_as_stale_at_the_next_sweep():
    pair = pair_spec()
    pipeline, _, _ = make_pipeline(pair)
    feed(pipeline, pair, [(0, 3)])
    pipeline.sweep(T0 + 5000)
    assert SuccessSpan.objects.get().is_open
    pipeline.sweep(T0 + 11_000)  # both books older than max_age_ms 10000
    row = SuccessSpan.objects.get()
    assert row.close_reason == "stale" and not row.is_open


def test_finishing_a_replay_closes_the_spans_still_open():
    pair = pair_spec()
    pipeline, _, _ = make_pipeline(pair)
    feed(pipeline, pair, [(0, 3), (500, 4)])
    pipeline.finish()
    row = SuccessSpan.objects.get()
    assert row.close_reason == "end_of_replay"
    assert row.ended_at == datetime_of_ms(T0 + 500)


def test_thresholds_come_from_the_users_running_runs_by_default():
    pair = pair_spec()
    run = RunningRunFactory(min_net_edge_cents=D("2"), max_leg_usd=D("5"))
    RunningRunFactory(min_net_edge_cents=D("9"))  # someone stricter: nothing for them
    pipeline = IngestPipeline([pair], dispatch_intent=lambda i: 0, dispatch_span=lambda s: 0)
    pipeline.restore()
    feed(pipeline, pair, [(0, 3)])
    intent = ExecutionIntent.objects.get()
    assert intent.user_id == run.user_id
    assert intent.size == D(10)  # $5 per leg at 0.50


def test_replaying_the_same_data_again_is_not_held_back_by_the_first_replays_cooldowns():
    pair = pair_spec()
    user = RunningRunFactory().user
    users = [UserThreshold(user.pk, D(1), D(10))]
    script = [(0, 3), (20_000, 3), (40_000, 3)]
    first, _, _ = make_pipeline(pair, users)
    feed(first, pair, script)
    first.finish()

    second, _, _ = make_pipeline(pair, users)
    feed(second, pair, script)
    assert ExecutionIntent.objects.count() == 6  # three per replay, not three then none


def test_a_span_left_open_later_than_the_new_data_is_closed_as_superseded():
    pair = pair_spec()
    first, _, _ = make_pipeline(pair)
    feed(first, pair, [(60_000, 3), (61_000, 4)])  # stopped without finish(): stays open

    second, _, _ = make_pipeline(pair)
    feed(second, pair, [(0, 3)])

    left_open = SuccessSpan.objects.get(started_at=datetime_of_ms(T0 + 60_000))
    assert (left_open.close_reason, left_open.ended_at) == ("superseded", datetime_of_ms(T0 + 61_000))
    assert SuccessSpan.objects.get(started_at=datetime_of_ms(T0)).is_open
