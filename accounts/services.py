"""Writes to profiles and secrets. Each validates fully before it writes: nothing half-saved."""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import THRESHOLD_RULES, UserProfile, UserSecret
from accounts.secret_rules import EXCHANGES, validate_secret
from config.numbers import NumberError

THRESHOLD_FIELDS = tuple(THRESHOLD_RULES)


def get_profile(*, user) -> UserProfile:
    profile, _ = UserProfile.objects.get_or_create(user=user)
    return profile


@transaction.atomic
def update_profile(*, user, **changes: Any) -> UserProfile:
    """Set any of the thresholds (None clears one). Raises ValidationError naming each bad field."""
    unknown = sorted(set(changes) - set(THRESHOLD_FIELDS))
    if unknown:
        raise ValidationError({name: ["is not a profile field"] for name in unknown})
    profile = UserProfile.objects.select_for_update().get(pk=get_profile(user=user).pk)
    errors: dict[str, list[str]] = {}
    for name, raw in changes.items():
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            setattr(profile, name, None)
            continue
        try:
            setattr(profile, name, THRESHOLD_RULES[name].parse(raw))
        except NumberError as error:
            errors[name] = [str(error)]
    if errors:
        raise ValidationError(errors)
    profile.full_clean(exclude=["user"])
    profile.save()
    return profile


@transaction.atomic
def set_secret(*, user, exchange: str, api_key: Any = "", extra: Any = None) -> UserSecret:
    """Create or replace the user's secret for one exchange (the whole secret, not a merge)."""
    errors = validate_secret(exchange, api_key, extra)
    if errors:
        raise ValidationError(errors)
    secret, _ = UserSecret.objects.select_for_update().get_or_create(user=user, exchange=exchange)
    secret.api_key = (api_key or "").strip()
    secret.extra = {k: (v.strip() if isinstance(v, str) else v) for k, v in (extra or {}).items()}
    secret.save()
    return secret


def delete_secret(*, user, exchange: str) -> bool:
    if exchange not in EXCHANGES:
        raise ValidationError({"exchange": [f"must be one of {', '.join(EXCHANGES)}"]})
    deleted, _ = UserSecret.objects.filter(user=user, exchange=exchange).delete()
    return bool(deleted)
