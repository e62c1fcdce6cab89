"""Rotating FIELD_ENCRYPTION_KEY: add the new key first, re-encrypt, then drop the old key."""

import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from encrypted_model_fields import fields as encrypted_fields

from accounts.selectors import decrypted_secret
from accounts.services import set_secret

pytestmark = pytest.mark.django_db
OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()
API_KEY = "kalshi-key-id-rotate-1"


@pytest.fixture
def use_keys(settings, monkeypatch):
    """Configure FIELD_ENCRYPTION_KEY as a deploy would; the library builds its crypter at import."""

    def use(*keys: str) -> None:
        settings.FIELD_ENCRYPTION_KEY = list(keys)
        monkeypatch.setattr(encrypted_fields, "CRYPTER", encrypted_fields.get_crypter())

    return use


def stored(user) -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key, extra FROM user_secrets WHERE user_id = %s", [user.pk])
        return cursor.fetchone()


@pytest.fixture
def secret_on_old_key(use_keys, user, rsa_private_pem):
    use_keys(OLD_KEY)
    set_secret(user=user, exchange="kalshi", api_key=API_KEY, extra={"private_key": rsa_private_pem})
    return {"api_key": API_KEY, "extra": {"private_key": rsa_private_pem.strip()}}


def test_rotation_keeps_secrets_readable_and_leaves_only_the_new_key_needed(
    use_keys, user, secret_on_old_key, capsys
):
    use_keys(NEW_KEY, OLD_KEY)
    assert decrypted_secret(user_id=user.pk, exchange="kalshi") == secret_on_old_key
    with pytest.raises(CommandError, match="before dropping the old key"):
        call_command("rotate_secrets_key", "--check")
    assert "2 of 2 encrypted values are on an older key" in capsys.readouterr().out

    call_command("rotate_secrets_key")
    assert "re-encrypted 2 of 2" in capsys.readouterr().out
    call_command("rotate_secrets_key", "--check")

    use_keys(NEW_KEY)
    assert decrypted_secret(user_id=user.pk, exchange="kalshi") == secret_on_old_key
    for token in stored(user):
        with pytest.raises(InvalidToken):
            Fernet(OLD_KEY).decrypt(token.encode())


def test_a_value_no_key_opens_stops_the_rotation_before_any_write(use_keys, user, secret_on_old_key):
    before = stored(user)
    use_keys(NEW_KEY)  # the old key was dropped too early
    with pytest.raises(CommandError, match="opens with none of the configured keys"):
        call_command("rotate_secrets_key")
    assert stored(user) == before
    use_keys(NEW_KEY, OLD_KEY)
    assert decrypted_secret(user_id=user.pk, exchange="kalshi") == secret_on_old_key


@pytest.mark.slow
def test_the_key_setting_takes_a_comma_separated_list_newest_first():
    code = f"from django.conf import settings; print(settings.FIELD_ENCRYPTION_KEY == [{NEW_KEY!r}, {OLD_KEY!r}])"
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=settings.BASE_DIR,
        env={**os.environ, "FIELD_ENCRYPTION_KEY": f" {NEW_KEY}, {OLD_KEY} "},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "True"
