"""The engine deciding one (run, intent): each check alone, the trade's arithmetic, the run's
money, determinism and exactly-once."""

from datetime import timedelta
from decimal import Decimal

import pytest

from accounts.models import UserSecret
from simulator.core import CHECK_NAMES, NOT_RUN_DETAIL, ExchangeValidation, LegValidation
from simulator.engine import arrive_in_order, decide_intent, in_flight_steps
from simulator.models import Decision, SimulatorTrade
from simulator.services import start_run, stop_run
from tests.simulator.conftest import UNCHANGED_BOOKS, ArrivalBooks, BookValidator
from tests.simulator.factories import NOW, ExecutionIntentFactory, intent_legs, set_thresholds

pytestmark = pytest.mark.django_db
D = Decimal


def start(user, usd="1000", **kwargs):
    run, _ = start_run(user=user, starting_usd=usd, now=NOW, **kwargs)
    return run


def assert_skipped_at(decision: Decision, name: str, detail_has: str = "") -> None:
    assert decision.outcome == "skipped"
    assert decision.reason_code == name
    assert [check["name"] for check in decision.checks] == list(CHECK_NAMES)
    failed_at = CHECK_NAMES.index(name)
    assert all(check["ok"] for check in decision.checks[:failed_at])
    assert decision.reason == f"{name}: {decision.checks[failed_at]['detail']}"
    assert detail_has in decision.reason
    assert all(check["detail"] == NOT_RUN_DETAIL for check in decision.checks[failed_at + 1 :])
    assert not SimulatorTrade.objects.filter(decision=decision).exists()


def test_all_checks_passing_gives_a_trade_with_the_contract_arithmetic(trading_user, pair, book_validator):
    run = start(trading_user)
    intent = ExecutionIntentFactory(user=trading_user, pair=pair)
    decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator)
    assert decision.outcome == "traded" and decision.reason == "" and decision.reason_code == ""
    arrive_in_order(in_flight_steps(decision), books=ArrivalBooks(**UNCHANGED_BOOKS))
    trade = SimulatorTrade.objects.get(decision=decision)
    assert (trade.requested_size, trade.matched_size, trade.fill_pct) == (10, 10, D("1"))
    assert (trade.cost_usd, trade.fees_usd, trade.expected_pnl_usd) == (D("9.68"), D("0.18"), D("0.32"))
    assert [check["name"] for check in trade.checks] == list(CHECK_NAMES)
    assert all(check["ok"] for check in trade.checks)
    notional = D(0)
    for leg in trade.legs:
        best_ask = D(leg["book"][0]["price"])
        assert sum(D(fill["size"]) for fill in leg["fills"]) == trade.matched_size
        for fill in leg["fills"]:
            assert best_ask <= D(fill["price"]) <= D(leg["limit_price"])
            notional += D(fill["price"]) * D(fill["size"])
        assert set(leg) >= {
            "venue",
            "instrument_id",
            "side",
            "limit_price",
            "avg_fill_price",
            "fee_usd",
            "fills",
            "book",
        }
    assert trade.cost_usd == notional + sum(D(leg["fee_usd"]) for leg in trade.legs)
    assert trade.decided_at == NOW <= trade.executed_at <= trade.settled_at
    assert trade.validation["ok"] is True
    run.refresh_from_db()
    assert run.balance_usd == D("1000") - trade.cost_usd and run.reserved_usd == 0
    assert (run.trade_count, run.decision_count) == (1, 1)
    assert run.expected_pnl_usd == D("0.32") and run.traded_today_usd == D("9.68")
    assert run.liquidity_state["books"]  # what the arrivals took from the books they met


def test_the_trade_is_broadcast_after_commit(
    trading_user, pair, book_validator, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(
        "simulator.engine.pipeline.broadcast_decision",
        lambda trade, run: sent.extend([("trade", trade.pk), ("run", run.pk)]),
    )
    run = start(trading_user)
    intent = ExecutionIntentFactory(user=trading_user, pair=pair)
    with django_capture_on_commit_callbacks(execute=True):
        decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator)
    assert sent == [("trade", decision.trade.pk), ("run", run.pk)]


def test_a_broken_channel_layer_does_not_lose_the_trade(
    trading_user, pair, book_validator, monkeypatch, django_capture_on_commit_callbacks
):
    def explode():
        raise ConnectionError("redis down")

    monkeypatch.setattr("simulator.engine.broadcast.get_channel_layer", explode)
    run = start(trading_user)
    intent = ExecutionIntentFactory(user=trading_user, pair=pair)
    with django_capture_on_commit_callbacks(execute=True):
        decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator)
    assert SimulatorTrade.objects.filter(pk=decision.trade.pk).exists()


def test_has_orders_failing_alone(trading_user, pair, book_validator):
    run = start(trading_user)
    intent = ExecutionIntentFactory(user=trading_user, pair=pair, legs=[])
    assert_skipped_at(
        decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator),
        "has_orders",
        "no orders",
    )
    assert book_validator.calls == 0


def test_net_edge_failing_alone(trading_user, pair, book_validator):
    run = start(trading_user)
    intent = ExecutionIntentFactory(user=trading_user, pair=pair, net_edge_cents=D("0.5"))
    decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator)
    assert_skipped_at(decision, "net_edge", "net edge 0.50c < your minimum 1.00c")
    assert book_validator.calls == 0


def test_instrument_ids_failing_alone(trading_user, pair, book_validator):
    run = start(trading_user)
    legs = intent_legs(pair)
    legs[1]["instrument_id"] = ""
    intent = ExecutionIntentFactory(user=trading_user, pair=pair, legs=legs)
    decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator)
    assert_skipped_at(decision, "instrument_ids", "polymarket token id missing")


def test_exchange_keys_failing_alone(trading_user, pair, book_validator):
    UserSecret.objects.filter(user=trading_user, exchange="polymarket").delete()
    run = start(trading_user)
    intent = ExecutionIntentFactory(user=trading_user, pair=pair)
    decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator)
    assert_skipped_at(decision, "exchange_keys", "no polymarket keys saved on your profile")
    assert book_validator.calls == 0


def test_exchange_validation_failing_alone(trading_user, pair):
    def closed_market(user_id, legs, now):
        return ExchangeValidation(
            ok=False,
            legs=tuple(
                LegValidation(
                    leg.venue, leg.instrument_id, leg.side, False, "closed", "market is closed", False, None
                )
                for leg in legs
            ),
            balances_usd={"kalshi": D(500), "polymarket": D(500)},
        )

    run = start(trading_user)
    intent = ExecutionIntentFactory(user=trading_user, pair=pair)
    decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=closed_market)
    assert_skipped_at(decision, "exchange_validation", "closed: market is closed")


def test_balance_failing_alone(trading_user, pair, book_validator):
    run = start(trading_user, usd="5")
    intent = ExecutionIntentFactory(user=trading_user, pair=pair)
    decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator)
    assert_skipped_at(decision, "balance", "worst-case cost $9.69 > run balance $5.00")
    run.refresh_from_db()
    assert (run.balance_usd, run.decision_count, run.trade_count) == (D("5"), 1, 0)


def test_daily_cap_failing_alone(trading_user, pair, book_validator):
    set_thresholds(trading_user, daily_cap="5")
    run = start(trading_user)
    intent = ExecutionIntentFactory(user=trading_user, pair=pair)
    decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator)
    assert_skipped_at(decision, "daily_cap", "> your daily cap $5.00")


def test_an_unset_threshold_says_so(trading_user, pair, book_validator):
    set_thresholds(trading_user, min_edge=None)
    run = start(trading_user)
    intent = ExecutionIntentFactory(user=trading_user, pair=pair)
    decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator)
    assert_skipped_at(
        decision, "net_edge", "min_net_edge_cents was not set on your profile when this run started"
    )


def test_the_daily_cap_starts_again_at_utc_midnight(trading_user, pair, book_validator):
    set_thresholds(trading_user, daily_cap="15")
    run = start(trading_user)
    first, second, third = (ExecutionIntentFactory(user=trading_user, pair=pair) for _ in range(3))
    late = NOW.replace(hour=23, minute=59)
    assert (
        decide_intent(run_id=run.pk, intent_id=first.pk, now=late, validator=BookValidator()).outcome
        == "traded"
    )
    assert_skipped_at(
        decide_intent(
            run_id=run.pk, intent_id=second.pk, now=late + timedelta(seconds=1), validator=BookValidator()
        ),
        "daily_cap",
    )
    next_day = late + timedelta(minutes=2)
    assert (
        decide_intent(run_id=run.pk, intent_id=third.pk, now=next_day, validator=BookValidator()).outcome
        == "traded"
    )
    run.refresh_from_db()
    assert run.traded_day == next_day.date() and run.traded_today_usd == D("9.69")  # held, not arrived


def test_an_intent_decided_twice_makes_one_decision(trading_user, pair, book_validator):
    run = start(trading_user)
    intent = ExecutionIntentFactory(user=trading_user, pair=pair)
    first = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator)
    again = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator)
    assert again.pk == first.pk
    assert Decision.objects.filter(run=run).count() == 1
    assert SimulatorTrade.objects.filter(run=run).count() == 1
    run.refresh_from_db()
    assert (run.trade_count, run.decision_count, run.balance_usd) == (1, 1, D("990.31"))  # $9.69 held
    assert book_validator.calls == 1


def test_a_stopped_run_decides_nothing(trading_user, pair, book_validator):
    run = start(trading_user)
    stop_run(user=trading_user, run_id=run.pk)
    intent = ExecutionIntentFactory(user=trading_user, pair=pair)
    assert decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator) is None
    assert not Decision.objects.exists()


def test_a_run_past_its_end_expires_instead_of_deciding(trading_user, pair, book_validator):
    run = start(trading_user, duration_minutes=10)
    intent = ExecutionIntentFactory(user=trading_user, pair=pair)
    assert (
        decide_intent(
            run_id=run.pk, intent_id=intent.pk, now=NOW + timedelta(minutes=10), validator=book_validator
        )
        is None
    )
    run.refresh_from_db()
    assert (run.status, run.stop_reason) == ("expired", "reached its end time")


def test_another_users_intent_is_not_decided_by_this_run(trading_user, other_user, pair, book_validator):
    run = start(trading_user)
    intent = ExecutionIntentFactory(user=other_user, pair=pair)
    assert decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator) is None


def trade_fingerprint(run_seed: int, intents_in_order, user, pair) -> list[tuple]:
    run = start(user, usd="100000")
    run.seed = run_seed
    run.save(update_fields=["seed"])
    deep = BookValidator(asks=[("0.44", "3"), ("0.45", "4"), ("0.46", "50")])
    books = ArrivalBooks(
        kalshi=([("0.45", "9")], [("0.40", "9")]), polymarket=([("0.50", "9")], [("0.45", "9")])
    )
    out = {}
    for second, intent in enumerate(intents_in_order):
        at = NOW + timedelta(seconds=second)
        decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=at, validator=deep)
        arrive_in_order(in_flight_steps(decision), books=books)
        trade = SimulatorTrade.objects.get(decision=decision)
        out[intent.pk] = (
            trade.matched_size,
            trade.cost_usd,
            trade.executed_at - at,
            trade.settled_at - at,
            # The legs as drawn, without the clock times their position in the sequence gives.
            str([{k: v for k, v in leg.items() if not k.endswith(("_at", "_ts_ms"))} for leg in trade.legs]),
        )
    return [out[intent.pk] for intent in sorted(intents_in_order, key=lambda i: i.pk)]


def test_same_seed_and_inputs_give_identical_trades(trading_user, pair):
    set_thresholds(trading_user, min_edge="1", max_leg="1000", daily_cap="100000")
    intents = [
        ExecutionIntentFactory(
            user=trading_user,
            pair=pair,
            net_edge_cents=D("1.5"),
            size=D("7"),
            signal_at=NOW + timedelta(seconds=n),
        )
        for n in range(4)
    ]
    first = trade_fingerprint(12345, intents, trading_user, pair)
    again = trade_fingerprint(12345, intents, trading_user, pair)
    assert first == again
    assert len({fingerprint[2] for fingerprint in first}) > 1  # timing is drawn per intent


def test_each_intent_draws_the_same_trade_whatever_the_order(trading_user, pair):
    set_thresholds(trading_user, min_edge="1", max_leg="1000", daily_cap="100000")
    intents = [
        ExecutionIntentFactory(
            user=trading_user,
            pair=pair,
            net_edge_cents=D("1.5"),
            size=D("7"),
            signal_at=NOW + timedelta(seconds=n),
        )
        for n in range(3)
    ]
    forwards = trade_fingerprint(777, intents, trading_user, pair)
    backwards = trade_fingerprint(777, list(reversed(intents)), trading_user, pair)
    assert forwards == backwards


def test_the_rows_written_read_back_as_the_engine_built_them(trading_user, pair, book_validator):
    """The engine writes its rows with its own prepared statement (simulator.engine.write): every
    column of the decision, the trade and the run reads back as the instances it returned."""
    run = start(trading_user)
    intent = ExecutionIntentFactory(user=trading_user, pair=pair)
    decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator)
    for written in (decision, decision.trade, decision.run):
        stored = type(written).objects.get(pk=written.pk)
        for field in type(written)._meta.concrete_fields:
            assert getattr(stored, field.attname) == getattr(written, field.attname), field.name


def test_what_the_engine_reads_equals_what_the_orm_reads(trading_user, pair):
    """The engine builds its run, intent and pair from its own query; the intent's and pair's
    fields it does not read (an intent's books) still load on first access."""
    from ingest.models import ExecutionIntent
    from simulator.engine.load import run_intent_and_stamps
    from simulator.engine.validation import secret_stamps
    from simulator.models import SimulatorRun

    run = start(trading_user)
    intent = ExecutionIntentFactory(
        user=trading_user, pair=pair, books=[{"venue": "kalshi", "asks": [["0.45", "10"]]}]
    )
    read_run, read_intent, stamps = run_intent_and_stamps(run.pk, intent.pk)
    stored_run = SimulatorRun.objects.get(pk=run.pk)
    stored_intent = ExecutionIntent.objects.select_related("pair").get(pk=intent.pk)
    for read, stored in (
        (read_run, stored_run),
        (read_intent, stored_intent),
        (read_intent.pair, stored_intent.pair),
    ):
        for field in type(stored)._meta.concrete_fields:
            assert getattr(read, field.attname) == getattr(stored, field.attname), field.name
    assert read_run.decided_id is None
    assert stamps == secret_stamps(user_id=trading_user.pk)


def test_rows_of_a_model_with_init_listeners_go_through_its_constructor(trading_user, pair, book_validator):
    """An app listening to post_init (as some field types do) still sees every row the engine builds."""
    from django.db.models.signals import post_init

    from simulator.engine import sql

    seen = []

    def remember(sender, instance, **kwargs):
        seen.append(instance)

    post_init.connect(remember, sender=SimulatorTrade)
    sql._shapes.clear()  # shapes are worked out once per model
    try:
        run = start(trading_user)
        intent = ExecutionIntentFactory(user=trading_user, pair=pair)
        decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator)
    finally:
        post_init.disconnect(remember, sender=SimulatorTrade)
        sql._shapes.clear()
    assert decision.outcome == "traded"
    assert decision.trade in seen
    assert SimulatorTrade.objects.get(pk=decision.trade.pk).cost_usd == decision.trade.cost_usd


def test_a_row_missing_a_field_is_refused_before_anything_is_written():
    from simulator.engine.sql import new_row

    with pytest.raises(TypeError, match=r"missing \['created_at'"):
        new_row(Decision, run_id=1, intent_id=1, span_id=None, decision_source="intent", outcome="traded",
                reason="", reason_code="", checks=[], edge_cents=D("1"), opportunity_key="K")  # fmt: skip
