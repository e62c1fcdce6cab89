"""Import market pairs from a YAML or JSON fixture (create or update by opportunity key)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ingest.pairs import PairFixtureError, import_pairs_file


class Command(BaseCommand):
    help = "Import market pairs from a YAML (.yaml/.yml) or JSON (.json) fixture; all or nothing."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)

    def handle(self, *args: object, **options: object) -> None:
        try:
            result = import_pairs_file(path=options["file"])
        except PairFixtureError as exc:
            raise CommandError(f"{options['file']}: nothing imported:\n" + "\n".join(exc.errors)) from exc
        self.stdout.write(f"{len(result.created)} created, {len(result.updated)} updated")
        for key in result.created:
            self.stdout.write(f"  + {key}")
        for key in result.updated:
            self.stdout.write(f"  ~ {key}")
