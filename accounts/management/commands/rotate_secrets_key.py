"""manage.py rotate_secrets_key: re-encrypt every secret at rest with the newest key.

FIELD_ENCRYPTION_KEY is a comma-separated list, newest first (config/settings.py). Rotation:
1. prepend the new key (the old one stays, so existing rows stay readable) and deploy;
2. run this command: each value is decrypted with whichever key opens it and written back
   under the newest key, in one transaction with the rows locked (a secret saved meanwhile is
   not overwritten with its older value);
3. `rotate_secrets_key --check` says 0 values are left on older keys: drop the old key.

A value that no configured key opens stops the command before anything is written: the
library would otherwise hand the ciphertext back as if it were the secret.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken
from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from encrypted_model_fields import fields as encrypted_fields


def encrypted_models() -> list[tuple[type, list]]:
    """(model, [its encrypted fields]) for every installed model that has any."""
    found = []
    for model in apps.get_models():
        fields = [f for f in model._meta.concrete_fields if isinstance(f, encrypted_fields.EncryptedMixin)]
        if fields:
            found.append((model, fields))
    return found


def stored_tokens(model, fields) -> list[tuple]:
    """(pk, token, ...) as stored, rows locked on PostgreSQL. Raw SQL because the ORM decrypts,
    and passes a token it cannot open through unchanged."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in [model._meta.pk, *fields])
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    with connection.cursor() as cursor:
        # Identifiers come from the models' metadata, never from input.
        cursor.execute(f"SELECT {columns} FROM {quote(model._meta.db_table)}{lock}")  # noqa: S608
        return cursor.fetchall()


class Command(BaseCommand):
    help = "Re-encrypt every encrypted field with the newest FIELD_ENCRYPTION_KEY (the first one)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--check",
            action="store_true",
            help="write nothing; count the values not yet under the newest key (exit 1 if any)",
        )

    def handle(self, *args, check: bool = False, **options):
        newest = Fernet(settings.FIELD_ENCRYPTION_KEY[0])
        crypter = encrypted_fields.CRYPTER  # every configured key, newest first (MultiFernet)
        total = on_older = 0
        with transaction.atomic():
            for model, fields in encrypted_models():
                for pk, *tokens in stored_tokens(model, fields):
                    plain: dict[str, str] = {}
                    for field, token in zip(fields, tokens, strict=True):
                        if token is None:
                            continue
                        total += 1
                        try:
                            newest.decrypt(token.encode())
                            continue
                        except InvalidToken:
                            on_older += 1
                        try:
                            plain[field.attname] = crypter.decrypt(token.encode()).decode()
                        except InvalidToken:
                            raise CommandError(
                                f"{model._meta.label} {pk}: {field.name} opens with none of the "
                                "configured keys; nothing was re-encrypted"
                            ) from None
                    if plain and not check:
                        # update() encrypts through the field, i.e. with the newest key.
                        model._default_manager.filter(pk=pk).update(**plain)
        if check:
            self.stdout.write(f"{on_older} of {total} encrypted values are on an older key")
            if on_older:
                raise CommandError("run `manage.py rotate_secrets_key` before dropping the old key")
            return
        self.stdout.write(
            f"re-encrypted {on_older} of {total} encrypted values with the newest key; "
            "older keys can now be removed from FIELD_ENCRYPTION_KEY"
        )
