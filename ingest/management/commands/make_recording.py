"""Write a SEEDED, SYNTHETIC recording (ingest.synthetic): the same arguments give the same bytes."""

from __future__ import annotations

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ingest.synthetic import DEFAULT_UPDATES_PER_S, generate


class Command(BaseCommand):
    help = "Generate a synthetic (not real) market-data recording with a fixed seed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", type=Path, required=True, help="the .jsonl.gz file to write")
        parser.add_argument("--pairs", type=int, default=3, help="number of pairs (default 3)")
        parser.add_argument("--hours", type=float, default=2.0, help="hours of data (default 2)")
        parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
        parser.add_argument(
            "--updates-per-s",
            type=float,
            default=DEFAULT_UPDATES_PER_S,
            help=f"approximate lines per pair per second (default {DEFAULT_UPDATES_PER_S})",
        )

    def handle(self, *args: object, **options: object) -> None:
        if options["pairs"] < 1 or options["hours"] <= 0 or options["updates_per_s"] <= 0:
            raise CommandError("--pairs, --hours and --updates-per-s must be positive")
        started = time.monotonic()
        try:
            count = generate(
                options["out"],
                pairs=options["pairs"],
                hours=options["hours"],
                seed=options["seed"],
                updates_per_s=options["updates_per_s"],
            )
        except OSError as exc:
            raise CommandError(f"cannot write {options['out']}: {exc.strerror}") from exc
        size_kb = options["out"].stat().st_size / 1024
        self.stdout.write(
            f"wrote {options['out']}: {count} updates, {options['pairs']} pairs, {options['hours']} h, "
            f"seed {options['seed']}, {size_kb:.0f} KiB in {time.monotonic() - started:.1f} s (synthetic)"
        )
