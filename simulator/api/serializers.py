"""Input serializers (type checks and bounds, each error naming its field) and, for the OpenAPI
schema only, output serializers describing what `simulator.presenters` returns.

Output is never produced through these classes: the presenters are the one source of the JSON
contract, and the schema tests check that both agree.
"""

from __future__ import annotations

from decimal import Decimal

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.number_fields import RuleDecimalField, RuleIntegerField
from config.numbers import DecimalRule, WholeRule
from ingest.models import OPPORTUNITY_KEY_RULE
from simulator import run_settings
from simulator.backtests import GRID_SETTINGS
from simulator.services import RUN_ID, STARTING_USD, duration_minutes_rule

REPORT_DEFAULTS = {"hours": 24, "max_gap_s": 120, "min_edge_cents": Decimal("3")}
REPORT_HOURS = WholeRule(1, 168, unit="hours")
REPORT_MAX_GAP_S = WholeRule(0, 86400, unit="seconds")
REPORT_MIN_EDGE_CENTS = DecimalRule(Decimal("0"), Decimal("100"), places=4, unit="cents")


class OpportunityKeyField(serializers.CharField):
    def __init__(self, **kwargs):
        super().__init__(max_length=64, validators=[OPPORTUNITY_KEY_RULE], **kwargs)


class SettingChoiceField(serializers.ChoiceField):
    """One of a run setting's choices, defaulted when left out; a refusal lists the choices (DRF's
    own says only "not a valid choice")."""

    def __init__(self, name: str, **kwargs):
        choices = run_settings.CHOICES[name]
        super().__init__(
            choices,
            required=False,
            default=run_settings.DEFAULTS[name],
            help_text=f"{run_settings.HELP[name]}.",
            **kwargs,
        )
        listed = ", ".join(choices)
        self.error_messages["invalid_choice"] = f'"{{input}}" is not one of the choices: {listed}'
        self.error_messages["blank"] = f"may not be blank; one of the choices: {listed}"
        self.error_messages["null"] = f"may not be null; one of the choices: {listed}"


def latency_ms_field(name: str) -> RuleIntegerField:
    rule = run_settings.LATENCY_RULES[name]
    return RuleIntegerField(
        rule,
        required=False,
        allow_null=True,
        default=run_settings.DEFAULTS[name],
        help_text=f"{run_settings.HELP[name]}; {rule.accepted()}; null: the default.",
    )


class StartInputSerializer(serializers.Serializer):
    starting_usd = RuleDecimalField(STARTING_USD, help_text="Fake dollars the run starts with.")
    opportunity_key = OpportunityKeyField(required=False, help_text="One key to watch.")
    opportunity_keys = serializers.ListField(
        child=OpportunityKeyField(),
        required=False,
        max_length=200,
        help_text="Keys to watch; empty or omitted (with no opportunity_key) means every key.",
    )
    duration_minutes = RuleIntegerField(
        duration_minutes_rule(),
        required=False,
        allow_null=True,
        default=0,
        help_text="0 or null: until stopped (the run still stops after 7 days).",
    )
    label = serializers.CharField(required=False, default="", allow_blank=True, max_length=120)
    notes = serializers.CharField(required=False, default="", allow_blank=True, max_length=2000)
    kalshi_order_type = SettingChoiceField("kalshi_order_type")
    polymarket_order_type = SettingChoiceField("polymarket_order_type")
    sequencing = SettingChoiceField("sequencing")
    unhedged = SettingChoiceField("unhedged")
    kalshi_latency_ms = latency_ms_field("kalshi_latency_ms")
    polymarket_latency_ms = latency_ms_field("polymarket_latency_ms")

    def validate(self, attrs):
        keys = list(attrs.pop("opportunity_keys", []))
        single = attrs.pop("opportunity_key", None)
        if single:
            keys.insert(0, single)
        attrs["opportunity_keys"] = list(dict.fromkeys(keys))  # merged, order kept, no repeats
        return attrs


class StopInputSerializer(serializers.Serializer):
    run_id = RuleIntegerField(
        RUN_ID,
        required=False,
        allow_null=True,
        help_text="The run to stop; omitted: your most recently started running run.",
    )
    reason = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")


class ReportParamsSerializer(serializers.Serializer):
    hours = RuleIntegerField(REPORT_HOURS, required=False, default=REPORT_DEFAULTS["hours"])
    max_gap_s = RuleIntegerField(
        REPORT_MAX_GAP_S,
        required=False,
        default=REPORT_DEFAULTS["max_gap_s"],
        help_text="How long after a span ends a trade still counts as catching it.",
    )
    min_edge_cents = RuleDecimalField(
        REPORT_MIN_EDGE_CENTS,
        required=False,
        default=REPORT_DEFAULTS["min_edge_cents"],
        help_text="Only spans whose peak net edge reached this many cents.",
    )


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {
            "oneOf": [
                {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "number"}]}},
                {"type": "string"},
            ]
        },
        "example": {"min_net_edge_cents": ["1", "2"], "order_type": "ioc,fok"},
    }
)
class GridField(serializers.JSONField):
    """{setting: [values] or "a,b"}: checked by the backtest service, which names the setting."""


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "number"}]})
class NumberOrTextField(serializers.JSONField):
    """A number as JSON or as text: checked by the service (the JSON contract writes them as text)."""


class BacktestInputSerializer(serializers.Serializer):
    recording = serializers.CharField(
        max_length=500, help_text="A name from GET /simulator/recordings (bundled/..., dir/..., upload/...)."
    )
    grid = GridField(
        required=False,
        help_text="The settings varied and their values; every combination is one grid point. "
        "Left out or {}: one point with the defaults. The settings: " + ", ".join(GRID_SETTINGS) + ".",
    )
    starting_usd = NumberOrTextField(
        required=False, help_text="Each point's starting balance (default 1000)."
    )
    seed = NumberOrTextField(
        required=False, allow_null=True, help_text="A whole number from 0 to 2^63-1; left out: random."
    )
    workers = NumberOrTextField(required=False, help_text="Processes for the grid points (default 1).")
    label = serializers.CharField(required=False, allow_blank=True, max_length=120, default="")


class RecordingUploadSerializer(serializers.Serializer):
    file = serializers.FileField(
        allow_empty_file=True,
        help_text="A recording (.jsonl.gz), checked line by line before it is kept.",
    )


# --- Output shapes (schema only) -----------------------------------------------------------------

_money = {"help_text": "Decimal as a string."}


@extend_schema_field({"type": "string", "format": "decimal", "example": "12.3400"})
class DecimalString(serializers.CharField):
    """A Decimal rendered as a string (the contract), e.g. "12.3400"."""


def one_of(*values: str, **kwargs) -> serializers.CharField:
    """A string out of `values`, as an inline enum (named enum components collide on `status`);
    with `allow_null=True`, or null."""
    field_class = type("OneOfField", (serializers.CharField,), {})
    schema: dict = {"type": "string", "enum": list(values)}
    if kwargs.get("allow_null"):
        schema = {**schema, "enum": [*values, None], "nullable": True}
    return extend_schema_field(schema)(field_class)(**kwargs)


class CheckOut(serializers.Serializer):
    name = serializers.CharField()
    ok = serializers.BooleanField()
    detail = serializers.CharField()


class LevelOut(serializers.Serializer):
    price = DecimalString()
    size = DecimalString()


class UnwindOut(serializers.Serializer):
    size = DecimalString(help_text="Contracts the unwind sells: the leg's unhedged excess.")
    latency_ms = serializers.IntegerField()
    sent_at = serializers.DateTimeField()
    arrived_at = serializers.DateTimeField()
    book = LevelOut(
        many=True, allow_null=True, help_text="The bids at arrival, best first; null until it arrives."
    )
    fills = LevelOut(many=True)
    fee_usd = DecimalString()
    proceeds_usd = DecimalString()
    detail = serializers.CharField(
        help_text="Why the bids took less than the size; empty when they took it all."
    )


class TradeLegOut(serializers.Serializer):
    venue = one_of("kalshi", "polymarket")
    instrument_id = serializers.CharField()
    side = one_of("yes", "no")
    limit_price = DecimalString()
    order_type = one_of("ioc", "fak", "fok")
    size = DecimalString(help_text="What the order asked for.")
    state = one_of("waiting", "sent", "arrived", "not_sent")
    latency_ms = serializers.IntegerField()
    unwind_latency_ms = serializers.IntegerField()
    sent_at = serializers.DateTimeField(allow_null=True)
    arrived_at = serializers.DateTimeField(allow_null=True)
    book = LevelOut(many=True, help_text="The asks the validation saw, best first.")
    book_available = LevelOut(many=True, help_text="The same, less what this run had already taken.")
    arrival_book = LevelOut(many=True, allow_null=True, help_text="The asks at arrival, best first.")
    arrival_available = LevelOut(
        many=True, allow_null=True, help_text="Per level, what this order could take after competition."
    )
    arrival_book_ts_ms = serializers.IntegerField(allow_null=True)
    arrival_best_bid = DecimalString(allow_null=True)
    fills = LevelOut(many=True)
    filled_size = DecimalString()
    avg_fill_price = DecimalString(allow_null=True)
    fee_usd = DecimalString()
    detail = serializers.CharField(help_text="Why the leg took less than its size; empty when it filled.")
    unhedged_size = DecimalString()
    carried_size = DecimalString()
    carried_mark_usd = DecimalString()
    unwind = UnwindOut(allow_null=True)


class RunExecutionOut(serializers.Serializer):
    kalshi_order_type = one_of(*run_settings.CHOICES["kalshi_order_type"])
    polymarket_order_type = one_of(*run_settings.CHOICES["polymarket_order_type"])
    sequencing = one_of(*run_settings.CHOICES["sequencing"])
    unhedged = one_of(*run_settings.CHOICES["unhedged"])
    kalshi_latency_ms = serializers.IntegerField(help_text="Median Kalshi order latency, ms.")
    polymarket_latency_ms = serializers.IntegerField(help_text="Median Polymarket order latency, ms.")


class RunOut(serializers.Serializer):
    id = serializers.IntegerField()
    status = one_of("running", "stopped", "expired", "failed")
    label = serializers.CharField()
    notes = serializers.CharField()
    opportunity_keys = serializers.ListField(child=serializers.CharField())
    starting_usd = DecimalString(**_money)
    balance_usd = DecimalString(**_money)
    pnl_usd = DecimalString(**_money)
    realised_pnl_usd = DecimalString(
        help_text="The same as pnl_usd: payouts of the run's resolved pairs less those trades' cost."
    )
    expected_pnl_usd = DecimalString(**_money)
    reserved_usd = DecimalString(help_text="Held for orders on their way (their worst-case cost).")
    unhedged_exposure_usd = DecimalString(
        help_text="Contracts carried unhedged on trades not yet resolved, at the mid when they arrived."
    )
    unhedged_contracts = DecimalString(help_text="How many contracts those are.")
    trade_count = serializers.IntegerField()
    decision_count = serializers.IntegerField()
    min_net_edge_cents = DecimalString(allow_null=True)
    max_leg_usd = DecimalString(allow_null=True)
    daily_cap_usd = DecimalString(allow_null=True)
    duration_minutes = serializers.IntegerField()
    started_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    stopped_at = serializers.DateTimeField(allow_null=True)
    stop_reason = serializers.CharField()
    execution = RunExecutionOut(help_text="The execution settings the run started with.")
    kind = one_of("live", "backtest", help_text="backtest: one grid point of a backtest.")
    backtest_id = serializers.IntegerField(allow_null=True, help_text="The backtest of a backtest run.")
    grid_point = serializers.DictField(
        child=serializers.CharField(), help_text="A backtest run's settings from its grid; {} for a live run."
    )


class StartedRunOut(RunOut):
    warnings = serializers.ListField(child=serializers.CharField())


class TradeOut(serializers.Serializer):
    id = serializers.IntegerField()
    run_id = serializers.IntegerField()
    intent_id = serializers.IntegerField()
    decision_id = serializers.IntegerField()
    opportunity_key = serializers.CharField()
    direction = serializers.CharField()
    status = one_of("queued", "executed", "settled")
    net_edge_cents = DecimalString()
    requested_size = DecimalString()
    order_size = DecimalString(help_text="What each leg's order asked for.")
    matched_size = DecimalString(help_text="The hedged size: the smaller leg's fill.")
    fill_pct = DecimalString()
    cost_usd = DecimalString()
    fees_usd = DecimalString()
    expected_pnl_usd = DecimalString()
    reserved_usd = DecimalString(help_text="The worst-case cost held at decision.")
    arrival_outcome = one_of(
        "full", "partial", "legged", "missed", allow_null=True, help_text="null while an order is on its way."
    )
    signal_edge_cents = DecimalString(allow_null=True, help_text="The intent's net edge.")
    realised_edge_cents = DecimalString(
        allow_null=True, help_text="Expected P&L per hedged contract; null when nothing hedged."
    )
    slippage_cents = DecimalString(allow_null=True, help_text="Signal edge less realised edge.")
    unwind_cost_usd = DecimalString()
    carried_mark_usd = DecimalString()
    payout_usd = DecimalString(allow_null=True, help_text="What the legs paid when the pair resolved.")
    realised_pnl_usd = DecimalString(allow_null=True, help_text="payout_usd - cost_usd; null until resolved.")
    resolved_at = serializers.DateTimeField(allow_null=True)
    resolution_disagreement = serializers.BooleanField(
        help_text="The venues resolved the pair's question differently (paid as each venue did)."
    )
    decided_at = serializers.DateTimeField()
    executed_at = serializers.DateTimeField()
    settled_at = serializers.DateTimeField()
    settlement_delay_s = DecimalString()
    legs = TradeLegOut(many=True)
    checks = CheckOut(many=True)
    validation = serializers.DictField()


class DecisionOut(serializers.Serializer):
    id = serializers.IntegerField()
    run_id = serializers.IntegerField()
    intent_id = serializers.IntegerField(allow_null=True)
    span_id = serializers.IntegerField(allow_null=True)
    decision_source = one_of("intent", "success_span")
    outcome = one_of("traded", "eligible", "skipped")
    reason = serializers.CharField()
    reason_code = serializers.CharField()
    opportunity_key = serializers.CharField()
    edge_cents = DecimalString(allow_null=True)
    checks = CheckOut(many=True)
    trade_id = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()


class IntentLegOut(serializers.Serializer):
    venue = serializers.CharField()
    instrument_id = serializers.CharField()
    side = serializers.CharField()
    limit_price = DecimalString()
    size = DecimalString()


class IntentOut(serializers.Serializer):
    id = serializers.IntegerField()
    opportunity_key = serializers.CharField()
    direction = serializers.CharField()
    net_edge_cents = DecimalString()
    size = DecimalString()
    fees_usd = DecimalString()
    cost_usd = DecimalString()
    legs = IntentLegOut(many=True)
    books = serializers.ListField(child=serializers.DictField())
    span_id = serializers.IntegerField(allow_null=True)
    signal_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    trades = TradeOut(many=True)
    decisions = DecisionOut(many=True)


class StatusOut(serializers.Serializer):
    runs = RunOut(many=True)
    recent_trades = TradeOut(many=True)


class ActiveOut(serializers.Serializer):
    active = serializers.BooleanField()
    count = serializers.IntegerField()
    max_running = serializers.IntegerField()
    runs = RunOut(many=True)


class PairOut(serializers.Serializer):
    opportunity_key = serializers.CharField()
    title = serializers.CharField()
    kalshi_ticker = serializers.CharField()
    kalshi_close_time = serializers.DateTimeField(allow_null=True)
    poly_close_time = serializers.DateTimeField(allow_null=True)
    active = serializers.BooleanField()
    kalshi_result = one_of("yes", "no", allow_null=True)
    poly_result = one_of("yes", "no", allow_null=True, help_text="yes: the YES token won.")
    resolved_at = serializers.DateTimeField(allow_null=True)
    resolution_disagreement = serializers.BooleanField()


class EquityPointOut(serializers.Serializer):
    trade_id = serializers.IntegerField()
    event = one_of("arrived", "resolved")
    at = serializers.DateTimeField()
    balance_usd = DecimalString()
    expected_pnl_usd = DecimalString()
    realised_pnl_usd = DecimalString()


class EquityOut(serializers.Serializer):
    run_id = serializers.IntegerField()
    starting_usd = DecimalString()
    points = EquityPointOut(many=True)


class LatencyOut(serializers.Serializer):
    p50 = serializers.FloatField(allow_null=True)
    p95 = serializers.FloatField(allow_null=True)


class ReportKeyOut(serializers.Serializer):
    opportunity_key = serializers.CharField()
    spans = serializers.IntegerField()
    captured = serializers.IntegerField()
    missed = serializers.IntegerField()
    trades = serializers.IntegerField()
    edge_available_usd = DecimalString()
    edge_captured_usd = DecimalString()


class ReportRunOut(serializers.Serializer):
    run_id = serializers.IntegerField()
    label = serializers.CharField()
    status = serializers.CharField()
    trades = serializers.IntegerField()
    trades_in_spans = serializers.IntegerField()
    edge_captured_usd = DecimalString()
    expected_pnl_usd = DecimalString()
    realised_pnl_usd = DecimalString(help_text="Of the run's trades in the window whose pairs resolved.")
    span_decisions = serializers.IntegerField()
    span_skips = serializers.IntegerField()


class SlippageOut(serializers.Serializer):
    p50 = DecimalString(allow_null=True)
    p95 = DecimalString(allow_null=True)
    trades = serializers.IntegerField(help_text="Trades with a realised edge (something hedged).")


class VenueLatencyOut(serializers.Serializer):
    p50 = serializers.IntegerField(allow_null=True)
    p99 = serializers.IntegerField(allow_null=True)
    orders = serializers.IntegerField()


class ArrivalOutcomesOut(serializers.Serializer):
    full = serializers.IntegerField()
    partial = serializers.IntegerField()
    legged = serializers.IntegerField()
    missed = serializers.IntegerField()


class ReportOut(serializers.Serializer):
    hours = serializers.IntegerField()
    max_gap_s = serializers.IntegerField()
    min_edge_cents = DecimalString()
    window_start = serializers.DateTimeField()
    window_end = serializers.DateTimeField()
    spans = serializers.IntegerField()
    captured = serializers.IntegerField()
    missed = serializers.IntegerField()
    capture_rate = serializers.FloatField(allow_null=True)
    latency_s = LatencyOut()
    edge_available_usd = DecimalString()
    edge_captured_usd = DecimalString()
    missed_reasons = serializers.DictField(child=serializers.IntegerField())
    trades_outside_spans = serializers.IntegerField()
    trades_in_flight = serializers.IntegerField(help_text="Trades whose orders are still on their way.")
    trades_arrived = serializers.IntegerField(help_text="Trades whose orders have all arrived.")
    arrival_outcomes = ArrivalOutcomesOut()
    slippage_cents = SlippageOut(help_text="Signal edge less realised edge, nearest-rank percentiles.")
    legging_incidents = serializers.IntegerField(help_text="Trades whose legs filled different sizes.")
    unwind_cost_usd = DecimalString()
    missed_at_arrival = serializers.DictField(child=serializers.IntegerField())
    arrival_latency_ms = serializers.DictField(child=VenueLatencyOut())
    trades_resolved = serializers.IntegerField(help_text="Trades whose pairs resolved (paid out).")
    realised_pnl_usd = DecimalString(help_text="Their payouts less their cost.")
    resolution_disagreements = serializers.IntegerField(
        help_text="Pairs whose venues resolved the question differently, among the trades' pairs."
    )
    resolution_disagreement_trades = serializers.IntegerField()
    resolution_disagreement_pnl_usd = DecimalString(help_text="What the trades on those pairs realised.")
    resolution_disagreement_expected_pnl_usd = DecimalString(
        help_text="What they would have made had the venues agreed (their expected P&L)."
    )
    resolution_disagreement_cost_usd = DecimalString(help_text="Expected less realised, on those pairs.")
    by_opportunity_key = ReportKeyOut(many=True)
    by_run = ReportRunOut(many=True)


class ErrorOut(serializers.Serializer):
    detail = serializers.ListField(child=serializers.CharField())


class UploadErrorOut(serializers.Serializer):
    file = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="What is wrong with the file (its first bad line).",
    )


class RecordingOut(serializers.Serializer):
    name = serializers.CharField(help_text="What a backtest's `recording` names it by.")
    size_bytes = serializers.IntegerField()
    origin = one_of("bundled", "directory", "upload")


class RecordingListOut(serializers.Serializer):
    results = RecordingOut(many=True)


class RecordingSummaryOut(serializers.Serializer):
    pairs = serializers.IntegerField()
    updates = serializers.IntegerField(help_text="Update lines read.")
    first_ms = serializers.IntegerField()
    last_ms = serializers.IntegerField()
    skipped_unknown = serializers.IntegerField(help_text="Updates for instruments outside the pairs.")
    gaps = serializers.IntegerField(help_text="Stretches without an update longer than a book's max age.")
    longest_gap_ms = serializers.IntegerField()
    empty_books = serializers.IntegerField()
    cut_short = serializers.BooleanField(help_text="The file ends in a partial line (ignored).")
    complete = serializers.BooleanField()


class UploadedRecordingOut(RecordingOut):
    summary = RecordingSummaryOut()


class BacktestProgressOut(serializers.Serializer):
    phase = one_of(
        "queued", "pass", "points", "done", help_text="pass: reading the recording; points: running the grid."
    )
    updates = serializers.IntegerField(help_text="Updates of the recording read so far.")


class BacktestOut(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()
    recording = serializers.CharField()
    grid = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))
    seed = serializers.CharField(help_text="A whole number, as text (63 bits).")
    starting_usd = DecimalString()
    workers = serializers.IntegerField()
    status = one_of("queued", "running", "done", "failed")
    error = serializers.CharField(help_text="Why it failed; empty otherwise.")
    points_total = serializers.IntegerField()
    points_done = serializers.IntegerField()
    progress = BacktestProgressOut()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    run_ids = serializers.ListField(
        child=serializers.IntegerField(), help_text="The grid points' runs, in grid order, once made."
    )


class StartedBacktestOut(BacktestOut):
    status_url = serializers.CharField()
    results_url = serializers.CharField()


class PointResultOut(serializers.Serializer):
    run_id = serializers.IntegerField()
    label = serializers.CharField()
    settings = serializers.DictField(child=serializers.CharField(), help_text="The point's grid settings.")
    execution = RunExecutionOut()
    min_net_edge_cents = DecimalString(allow_null=True)
    max_leg_usd = DecimalString(allow_null=True)
    daily_cap_usd = DecimalString(allow_null=True)
    trades = serializers.IntegerField(help_text="Trades whose orders arrived.")
    decisions = serializers.IntegerField()
    skipped = serializers.IntegerField()
    spans = serializers.IntegerField(help_text="Success spans in the recording.")
    spans_captured = serializers.IntegerField()
    capture_rate = DecimalString(allow_null=True)
    expected_pnl_usd = DecimalString()
    realised_pnl_usd = DecimalString(help_text="Payouts of pairs the recording resolved, less their cost.")
    resolved_trades = serializers.IntegerField()
    balance_usd = DecimalString()
    max_drawdown_usd = DecimalString(help_text="The largest fall of cumulative expected P&L from a high.")
    fees_usd = DecimalString()
    arrival_outcomes = ArrivalOutcomesOut()
    slippage_cents = SlippageOut()
    legging_incidents = serializers.IntegerField()
    unwind_cost_usd = DecimalString()
    missed_at_arrival = serializers.DictField(child=serializers.IntegerField())


class BacktestResultsOut(serializers.Serializer):
    id = serializers.IntegerField()
    status = one_of("done")
    grid = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))
    results = PointResultOut(many=True, help_text="One per grid point, best expected P&L first.")
