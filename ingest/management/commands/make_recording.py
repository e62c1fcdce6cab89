"""Write a SEEDED, SYNTHETIC recording (ingest.synthetic): the same arguments give the same bytes."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.numbers import DecimalRule, WholeRule, option_type
from config.progress import Progress
from ingest.synthetic import DEFAULT_UPDATES_PER_S, generate

PAIRS = WholeRule(1, 1000)
HOURS = DecimalRule(Decimal("0.001"), Decimal("720"), places=3, unit="hours")  # at most 30 days
SEED = WholeRule(0, 2**63 - 1)
UPDATES_PER_S = DecimalRule(Decimal("0.01"), Decimal("1000"), places=2)


class Command(BaseCommand):
    help = "Generate a synthetic (not real) market-data recording with a fixed seed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", type=Path, required=True, help="the .jsonl.gz file to write")
        parser.add_argument(
            "--pairs",
            type=option_type(PAIRS),
            default=3,
            help=f"number of pairs (default 3; {PAIRS.accepted()})",
        )
        parser.add_argument(
            "--hours",
            type=option_type(HOURS, float),
            default=2.0,
            help=f"hours of data (default 2; {HOURS.accepted()})",
        )
        parser.add_argument(
            "--seed", type=option_type(SEED), default=7, help=f"random seed (default 7; {SEED.accepted()})"
        )
        parser.add_argument(
            "--updates-per-s",
            type=option_type(UPDATES_PER_S, float),
            default=DEFAULT_UPDATES_PER_S,
            help=f"approximate lines per pair per second (default {DEFAULT_UPDATES_PER_S}; {UPDATES_PER_S.accepted()})",
        )

    def handle(self, *args: object, **options: object) -> None:
        started = time.monotonic()
        try:
            # The bar's position: seconds of data written, of the recording's hours.
            with Progress(
                "make_recording", unit="data_s", total=options["hours"] * 3600, stream=self.stdout
            ) as progress:
                count = generate(
                    options["out"],
                    pairs=options["pairs"],
                    hours=options["hours"],
                    seed=options["seed"],
                    updates_per_s=options["updates_per_s"],
                    on_progress=lambda lines, data_s: progress.update(done=data_s, lines=lines),
                )
        except OSError as exc:
            raise CommandError(f"cannot write {options['out']}: {exc.strerror}") from exc
        size_kb = options["out"].stat().st_size / 1024
        self.stdout.write(
            f"wrote {options['out']}: {count} updates, {options['pairs']} pairs, {options['hours']} h, "
            f"seed {options['seed']}, {size_kb:.0f} KiB in {time.monotonic() - started:.1f} s (synthetic)"
        )
