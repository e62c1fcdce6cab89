"""Reads of profiles and secrets. Only `decrypted_secret` returns key material, for signing."""

from datetime import datetime
from typing import TypedDict

from accounts.models import UserSecret
from accounts.secret_rules import EXCHANGES


class SecretStatus(TypedDict):
    exchange: str
    set: bool
    updated_at: datetime | None


def secret_statuses(*, user) -> list[SecretStatus]:
    stamps = dict(UserSecret.objects.filter(user=user).values_list("exchange", "updated_at"))
    return [{"exchange": name, "set": name in stamps, "updated_at": stamps.get(name)} for name in EXCHANGES]


def exchanges_with_secrets(*, user_id: int) -> set[str]:
    return set(UserSecret.objects.filter(user_id=user_id).values_list("exchange", flat=True))


def decrypted_secret(*, user_id: int, exchange: str) -> dict | None:
    """{"api_key": ..., "extra": {...}} for the exchange adapters, or None if the user has none."""
    secret = UserSecret.objects.filter(user_id=user_id, exchange=exchange).first()
    if secret is None:
        return None
    return {"api_key": secret.api_key, "extra": secret.extra}
