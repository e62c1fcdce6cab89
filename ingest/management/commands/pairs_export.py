"""Export market pairs as a fixture `pairs_import` reads back (YAML, or JSON for a .json file)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ingest.pairs import export_pairs


class Command(BaseCommand):
    help = "Export market pairs to FILE (.json: JSON, else YAML), or to stdout without FILE."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, nargs="?")
        parser.add_argument(
            "--format", choices=("yaml", "json"), help="default: from FILE's extension, else yaml"
        )
        parser.add_argument(
            "--key", action="append", default=[], help="only this opportunity key (repeatable)"
        )

    def handle(self, *args: object, **options: object) -> None:
        path = options["file"]
        fmt = options["format"] or ("json" if path and path.suffix.lower() == ".json" else "yaml")
        text = export_pairs(keys=options["key"] or None, fmt=fmt)
        if path is None:
            self.stdout.write(text, ending="")
            return
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write {path}: {exc.strerror}") from exc
        self.stdout.write(f"wrote {path}")
