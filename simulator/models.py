from django.conf import settings
from django.db import models
from django.db.models import Q

MONEY = {"max_digits": 18, "decimal_places": 4}
SIZE = {"max_digits": 14, "decimal_places": 2}
CENTS = {"max_digits": 10, "decimal_places": 4}


class Backtest(models.Model):
    """A recording replayed on its own clock for a grid of settings: one run of kind `backtest`
    per grid point (`runs`), decided by the same engine as live runs."""

    QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
    STATUS_CHOICES = [(s, s) for s in (QUEUED, RUNNING, DONE, FAILED)]

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="backtests")
    label = models.CharField(max_length=120, blank=True)
    recording = models.CharField(
        max_length=500, help_text="The recording's name (or path, from the command)."
    )
    grid = models.JSONField(default=dict, help_text="Setting name -> the values tried (as given).")
    seed = models.BigIntegerField()
    starting_usd = models.DecimalField(**MONEY)
    workers = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=16, choices=STATUS_CHOICES, default=QUEUED)
    error = models.TextField(blank=True)
    # What is done so far: phase ("pass" over the recording, then "points"), updates read, points done.
    progress = models.JSONField(default=dict, blank=True)
    points_total = models.PositiveIntegerField(default=0)
    points_done = models.PositiveIntegerField(default=0)
    results = models.JSONField(default=list, blank=True, help_text="One object per grid point.")
    recording_summary = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Moved on while running (progress, a grid point's decisions): one that stops moving has lost
    # its process, and beat's sweep ends it as failed.
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "simulator_backtests"
        indexes = [models.Index(fields=["user", "-created_at"], name="backtest_user_created")]

    def __str__(self) -> str:
        return f"backtest {self.pk} ({self.recording}, {self.status})"


class SimulatorRun(models.Model):
    RUNNING, STOPPED, EXPIRED, FAILED = "running", "stopped", "expired", "failed"
    STATUS_CHOICES = [(s, s) for s in (RUNNING, STOPPED, EXPIRED, FAILED)]
    LIVE, BACKTEST = "live", "backtest"
    KIND_CHOICES = [(k, k) for k in (LIVE, BACKTEST)]

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="simulator_runs"
    )
    status = models.CharField(max_length=16, choices=STATUS_CHOICES, default=RUNNING)
    # live: fed by ingest, counts toward the running limit. backtest: one grid point of a
    # Backtest, decided on its recording's clock; nothing live ever reaches it.
    kind = models.CharField(max_length=16, choices=KIND_CHOICES, default=LIVE)
    backtest = models.ForeignKey(
        Backtest, null=True, blank=True, on_delete=models.CASCADE, related_name="runs"
    )
    grid_point = models.JSONField(
        default=dict, blank=True, help_text="A backtest run's settings from its grid."
    )
    label = models.CharField(max_length=120, blank=True)
    notes = models.TextField(max_length=2000, blank=True)
    opportunity_keys = models.JSONField(default=list, blank=True, help_text="Empty: every opportunity key.")
    starting_usd = models.DecimalField(**MONEY)
    balance_usd = models.DecimalField(**MONEY)
    pnl_usd = models.DecimalField(
        **MONEY, default=0, help_text="Realised: payouts of resolved pairs - their cost."
    )
    expected_pnl_usd = models.DecimalField(**MONEY, default=0)
    trade_count = models.PositiveIntegerField(default=0)
    decision_count = models.PositiveIntegerField(default=0)
    # The user's thresholds when the run started: later profile edits do not move a running run.
    min_net_edge_cents = models.DecimalField(max_digits=6, decimal_places=2, null=True, blank=True)
    max_leg_usd = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    daily_cap_usd = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    duration_minutes = models.PositiveIntegerField(default=0, help_text="0: until stopped (at most 7 days).")
    started_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True)
    stop_reason = models.CharField(max_length=200, blank=True)
    seed = models.BigIntegerField()
    sim_config = models.JSONField(default=dict, blank=True)
    liquidity_state = models.JSONField(default=dict, blank=True)
    traded_day = models.DateField(null=True, blank=True)
    traded_today_usd = models.DecimalField(**MONEY, default=0)
    # Held for orders on their way: their worst-case cost, released at arrival less what they cost.
    reserved_usd = models.DecimalField(**MONEY, default=0)
    # Carried (unhedged) contracts of trades not yet resolved, and their mark at arrival.
    unhedged_exposure_usd = models.DecimalField(**MONEY, default=0)
    unhedged_contracts = models.DecimalField(**SIZE, default=0)

    class Meta:
        db_table = "simulator_runs"
        indexes = [
            models.Index(fields=["user", "status"], name="run_user_status"),
            models.Index(fields=["user", "-started_at"], name="run_user_started"),
            models.Index(fields=["status", "ends_at"], name="run_status_ends"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.label or 'unlabelled'}, {self.status})"

    def watches(self, opportunity_key: str) -> bool:
        return not self.opportunity_keys or opportunity_key in self.opportunity_keys


class Decision(models.Model):
    INTENT, SUCCESS_SPAN = "intent", "success_span"
    SOURCE_CHOICES = [(INTENT, INTENT), (SUCCESS_SPAN, SUCCESS_SPAN)]
    TRADED, ELIGIBLE, SKIPPED = "traded", "eligible", "skipped"
    OUTCOME_CHOICES = [(o, o) for o in (TRADED, ELIGIBLE, SKIPPED)]

    run = models.ForeignKey(SimulatorRun, on_delete=models.CASCADE, related_name="decisions")
    intent = models.ForeignKey(
        "ingest.ExecutionIntent", null=True, blank=True, on_delete=models.PROTECT, related_name="decisions"
    )
    span = models.ForeignKey(
        "ingest.SuccessSpan", null=True, blank=True, on_delete=models.PROTECT, related_name="decisions"
    )
    decision_source = models.CharField(max_length=16, choices=SOURCE_CHOICES)
    outcome = models.CharField(max_length=16, choices=OUTCOME_CHOICES)
    reason = models.CharField(max_length=300, blank=True)
    reason_code = models.CharField(max_length=40, blank=True, help_text="The failing check's name.")
    checks = models.JSONField(default=list)
    edge_cents = models.DecimalField(**CENTS, null=True, blank=True)
    opportunity_key = models.CharField(max_length=64)
    created_at = models.DateTimeField()

    class Meta:
        db_table = "simulator_decisions"
        constraints = [
            # Exactly-once: a redelivered task finds the row and stops.
            models.UniqueConstraint(
                fields=["run", "intent"],
                condition=Q(intent__isnull=False),
                name="one_decision_per_run_intent",
            ),
            models.UniqueConstraint(
                fields=["run", "span"], condition=Q(span__isnull=False), name="one_decision_per_run_span"
            ),
            models.CheckConstraint(
                condition=Q(decision_source="intent", intent__isnull=False, span__isnull=True)
                | Q(decision_source="success_span", span__isnull=False, intent__isnull=True),
                name="decision_has_exactly_its_source",
            ),
        ]
        indexes = [
            models.Index(fields=["run", "created_at"], name="decision_run_created"),
            models.Index(fields=["decision_source", "created_at"], name="decision_source_created"),
        ]

    def __str__(self) -> str:
        return f"decision {self.pk} {self.outcome}"


class SimulatorTrade(models.Model):
    run = models.ForeignKey(SimulatorRun, on_delete=models.CASCADE, related_name="trades")
    intent = models.ForeignKey("ingest.ExecutionIntent", on_delete=models.PROTECT, related_name="trades")
    decision = models.OneToOneField(Decision, on_delete=models.CASCADE, related_name="trade")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="simulator_trades"
    )
    opportunity_key = models.CharField(max_length=64)
    direction = models.CharField(max_length=32)
    net_edge_cents = models.DecimalField(**CENTS)
    requested_size = models.DecimalField(**SIZE)
    order_size = models.DecimalField(**SIZE, default=0, help_text="What each leg's order asked for.")
    matched_size = models.DecimalField(**SIZE, help_text="The hedged size: the smaller leg's fill.")
    fill_pct = models.DecimalField(max_digits=5, decimal_places=4)
    cost_usd = models.DecimalField(**MONEY)
    fees_usd = models.DecimalField(**MONEY)
    expected_pnl_usd = models.DecimalField(**MONEY)
    legs = models.JSONField()
    checks = models.JSONField()
    validation = models.JSONField()
    decided_at = models.DateTimeField()
    executed_at = models.DateTimeField()
    settled_at = models.DateTimeField()
    settlement_delay_s = models.DecimalField(max_digits=10, decimal_places=3)

    # Execution at arrival: "" while an order is on its way, then full | partial | legged | missed.
    arrival_outcome = models.CharField(max_length=16, blank=True, default="")
    reserved_usd = models.DecimalField(**MONEY, default=0, help_text="Worst-case cost held at decision.")
    signal_edge_cents = models.DecimalField(**CENTS, null=True, blank=True)
    realised_edge_cents = models.DecimalField(**CENTS, null=True, blank=True)
    slippage_cents = models.DecimalField(**CENTS, null=True, blank=True)
    unwind_cost_usd = models.DecimalField(**MONEY, default=0)
    carried_mark_usd = models.DecimalField(**MONEY, default=0, help_text="Unhedged contracts at the mid.")

    # Set once, when the pair's markets resolve (services.resolve_pair): what the legs paid.
    payout_usd = models.DecimalField(**MONEY, null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # The venues resolved the pair's question differently (ingest.MarketPair): paid as they did.
    resolution_disagreement = models.BooleanField(default=False)

    class Meta:
        db_table = "simulator_trades"
        constraints = [models.UniqueConstraint(fields=["run", "intent"], name="one_trade_per_run_intent")]
        indexes = [
            models.Index(fields=["run", "-decided_at"], name="trade_run_decided"),
            models.Index(fields=["user", "-decided_at"], name="trade_user_decided"),
            models.Index(fields=["opportunity_key", "executed_at"], name="trade_key_executed"),
            # The report's trade side: one user's trades on a key in a time window.
            models.Index(fields=["user", "opportunity_key", "executed_at"], name="trade_user_key_executed"),
            # The sweep's question: orders still on their way.
            models.Index(fields=["decided_at"], condition=Q(arrival_outcome=""), name="trade_in_flight"),
            # The lifecycle follower's question: pairs with a trade not yet paid out.
            models.Index(
                fields=["opportunity_key"], condition=Q(resolved_at__isnull=True), name="trade_unresolved"
            ),
        ]

    def __str__(self) -> str:
        return f"trade {self.pk} {self.opportunity_key} x{self.matched_size}"
