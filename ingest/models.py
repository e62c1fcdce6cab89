from decimal import Decimal

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from exchanges.fees import KALSHI_TAKER_RATE

OPPORTUNITY_KEY_RULE = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$", "letters, digits and _ . : - only, at most 64 characters"
)
RESULT_CHOICES = [("yes", "yes"), ("no", "no")]
DIRECTION_CHOICES = [
    ("kalshi_yes_poly_no", "YES on Kalshi + NO on Polymarket"),
    ("poly_yes_kalshi_no", "YES on Polymarket + NO on Kalshi"),
]


class MarketPair(models.Model):
    """One question listed on both venues: the opportunity key the simulator watches."""

    opportunity_key = models.CharField(max_length=64, unique=True, validators=[OPPORTUNITY_KEY_RULE])
    title = models.CharField(max_length=300, blank=True)
    kalshi_ticker = models.CharField(max_length=120)
    kalshi_title = models.CharField(max_length=300, blank=True)
    kalshi_close_time = models.DateTimeField(null=True, blank=True)
    poly_condition_id = models.CharField(max_length=120, blank=True)
    poly_yes_token = models.CharField(max_length=120)
    poly_no_token = models.CharField(max_length=120)
    poly_title = models.CharField(max_length=300, blank=True)
    poly_close_time = models.DateTimeField(null=True, blank=True)
    alignment_tolerance_s = models.PositiveIntegerField(
        default=86400, help_text="How far apart the two venues' close times may be and still pair."
    )
    kalshi_fee_rate = models.DecimalField(max_digits=6, decimal_places=4, default=KALSHI_TAKER_RATE)
    poly_fee_rate = models.DecimalField(max_digits=6, decimal_places=4, default=Decimal("0"))
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Resolution, as each venue reports it ("" until known): Kalshi's market result, and
    # Polymarket's as "yes" when the YES token won, "no" when the NO token did.
    kalshi_result = models.CharField(max_length=8, blank=True, choices=RESULT_CHOICES)
    poly_result = models.CharField(max_length=8, blank=True, choices=RESULT_CHOICES)
    # When the pair's trades were first paid (ingest.lifecycle, or sim_resolve by hand).
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution_disagreement = models.BooleanField(
        default=False, help_text="The venues resolved the question differently: the strategy's tail risk."
    )

    class Meta:
        db_table = "market_pairs"
        ordering = ["opportunity_key"]

    def __str__(self) -> str:
        return self.opportunity_key

    def set_results(self, *, kalshi: str, polymarket: str) -> None:
        """Both venues' results (not saved); the pair is flagged when they differ."""
        self.kalshi_result, self.poly_result = kalshi, polymarket
        self.resolution_disagreement = kalshi != polymarket


class SuccessSpan(models.Model):
    """A stretch of time in which a pair's net edge stayed at or above the span threshold."""

    span_key = models.CharField(max_length=200, unique=True)
    pair = models.ForeignKey(MarketPair, on_delete=models.PROTECT, related_name="spans")
    opportunity_key = models.CharField(max_length=64)
    direction = models.CharField(max_length=32, choices=DIRECTION_CHOICES)
    threshold_cents = models.DecimalField(max_digits=10, decimal_places=4)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    peak_edge_cents = models.DecimalField(max_digits=10, decimal_places=4)
    mean_edge_cents = models.DecimalField(max_digits=10, decimal_places=4)
    last_edge_cents = models.DecimalField(max_digits=10, decimal_places=4)
    max_size = models.DecimalField(max_digits=14, decimal_places=2)
    close_reason = models.CharField(max_length=40, blank=True)
    # While open: the span tracker's state (ingest.spans export_open), so a restart resumes the
    # span (peak, time-weighted mean) instead of opening a new one.
    tracker_state = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "success_spans"
        indexes = [
            models.Index(fields=["started_at"], name="span_started"),
            models.Index(fields=["opportunity_key", "started_at"], name="span_key_started"),
        ]

    def __str__(self) -> str:
        return self.span_key

    @property
    def is_open(self) -> bool:
        return self.ended_at is None


class ExecutionIntent(models.Model):
    """What ingest asks one user's simulator runs to try: persisted before anything consumes it."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="intents")
    pair = models.ForeignKey(MarketPair, on_delete=models.PROTECT, related_name="intents")
    opportunity_key = models.CharField(max_length=64)
    direction = models.CharField(max_length=32, choices=DIRECTION_CHOICES)
    span = models.ForeignKey(
        SuccessSpan, null=True, blank=True, on_delete=models.SET_NULL, related_name="intents"
    )
    net_edge_cents = models.DecimalField(max_digits=10, decimal_places=4)
    size = models.DecimalField(max_digits=14, decimal_places=2)
    fees_usd = models.DecimalField(max_digits=18, decimal_places=4)
    cost_usd = models.DecimalField(max_digits=18, decimal_places=4)
    legs = models.JSONField()
    books = models.JSONField()
    signal_at = models.DateTimeField(help_text="When the books behind it were seen (the ingest clock).")
    created_at = models.DateTimeField(auto_now_add=True)
    # live: from ingest, for live runs. backtest: from a backtest's pass over a recording, for its
    # own runs only (live ingest, its sweeps and cooldowns never see these).
    origin = models.CharField(
        max_length=16, default="live", choices=[("live", "live"), ("backtest", "backtest")]
    )

    class Meta:
        db_table = "execution_intents"
        indexes = [models.Index(fields=["user", "signal_at"], name="intent_user_signal")]

    def __str__(self) -> str:
        return f"intent {self.pk} {self.opportunity_key} {self.direction}"
