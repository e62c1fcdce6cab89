import json
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from encrypted_model_fields.fields import EncryptedCharField, EncryptedTextField

from accounts.secret_rules import EXCHANGES
from config.numbers import DecimalRule

# What a user may set (the columns keep 2 decimal places); forms, the API and the service parse with these.
THRESHOLD_RULES = {
    "min_net_edge_cents": DecimalRule(Decimal("0.01"), Decimal("99"), places=2, unit="cents"),
    "max_leg_usd": DecimalRule(Decimal("0.01"), Decimal("1000000"), places=2, unit="USD"),
    "daily_cap_usd": DecimalRule(Decimal("0.01"), Decimal("10000000"), places=2, unit="USD"),
}


def _bounded(name: str) -> list:
    rule = THRESHOLD_RULES[name]
    return [MinValueValidator(rule.low), MaxValueValidator(rule.high)]


class UserProfile(models.Model):
    """A user's trading thresholds. Empty means not set: the simulator's checks then skip trades."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    min_net_edge_cents = models.DecimalField(
        max_digits=6,
        decimal_places=2,
        null=True,
        blank=True,
        validators=_bounded("min_net_edge_cents"),
        help_text="Smallest net edge (cents per contract, after fees) worth trading.",
    )
    max_leg_usd = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        validators=_bounded("max_leg_usd"),
        help_text="Largest notional (USD) on one leg of one trade.",
    )
    daily_cap_usd = models.DecimalField(
        max_digits=14,
        decimal_places=2,
        null=True,
        blank=True,
        validators=_bounded("daily_cap_usd"),
        help_text="Largest total cost (USD) traded per UTC day.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "user_profiles"

    def __str__(self) -> str:
        return f"profile of {self.user}"

    def missing_thresholds(self) -> list[str]:
        return [
            name
            for name in ("min_net_edge_cents", "max_leg_usd", "daily_cap_usd")
            if getattr(self, name) is None
        ]


class UserSecret(models.Model):
    """One exchange's credentials for one user, encrypted at rest (Fernet via FIELD_ENCRYPTION_KEY)."""

    EXCHANGE_CHOICES = [(name, name.capitalize()) for name in EXCHANGES]

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="secrets")
    exchange = models.CharField(max_length=16, choices=EXCHANGE_CHOICES)
    api_key = EncryptedCharField(max_length=200, blank=True, default="")
    extra_encrypted = EncryptedTextField(db_column="extra", blank=True, default="{}")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "user_secrets"
        constraints = [models.UniqueConstraint(fields=["user", "exchange"], name="one_secret_per_exchange")]

    def __str__(self) -> str:
        # Never the key material: admin lists, logs and tracebacks show this.
        return f"{self.exchange} secret of {self.user}"

    def __repr__(self) -> str:
        return f"<UserSecret {self.pk} {self.exchange} user={self.user_id}>"

    @property
    def extra(self) -> dict:
        return json.loads(self.extra_encrypted or "{}")

    @extra.setter
    def extra(self, value: dict) -> None:
        self.extra_encrypted = json.dumps(value or {}, sort_keys=True)
