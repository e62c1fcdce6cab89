"""Record what the live source sees into a compressed JSON-lines recording (ingest.recording)."""

from __future__ import annotations

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.numbers import option_type
from config.progress import Progress
from config.shutdown import GracefulShutdown
from ingest.pairs import active_specs
from ingest.recording import RecordingWriter
from ingest.sources import LiveSource

from ._live_options import DURATION_S, add_live_arguments, hosts_from_options


class Command(BaseCommand):
    help = (
        "Poll the venues (or the exchange double) for the active pairs and write a recording, "
        "until --duration-s or Ctrl-C (or SIGTERM)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", type=Path, required=True, help="the .jsonl.gz file to write")
        parser.add_argument(
            "--duration-s",
            type=option_type(DURATION_S, float),
            help=f"stop after this many seconds (default: Ctrl-C or SIGTERM; {DURATION_S.accepted()})",
        )
        add_live_arguments(parser)

    def handle(self, *args: object, **options: object) -> None:
        specs = active_specs(keys=options["pairs"] or None)
        if not specs:
            raise CommandError("no active market pairs to record: import some with pairs_import")
        missing = set(options["pairs"]) - {s.opportunity_key for s in specs}
        if missing:
            raise CommandError(f"--pairs: no active pair {', '.join(sorted(missing))}")
        hosts = hosts_from_options(options)
        source = LiveSource(specs, hosts=hosts, poll_interval_s=options["poll_interval_s"])
        duration_s = options["duration_s"]
        started = time.monotonic()
        deadline = started + duration_s if duration_s is not None else None
        try:
            writer = RecordingWriter(
                options["out"],
                pairs=specs,
                source=f"live kalshi={hosts.kalshi} polymarket={hosts.polymarket}",
            )
        except OSError as exc:
            raise CommandError(f"cannot write {options['out']}: {exc.strerror}") from exc
        with (
            GracefulShutdown() as shutdown,
            Progress("recording", unit="updates", stream=self.stdout) as progress,
        ):
            try:
                while not shutdown.requested.is_set() and (deadline is None or time.monotonic() < deadline):
                    round_started = time.monotonic()
                    for update in source.poll_once():
                        writer.append(update.raw)
                    writer.flush()
                    errors = source.counters["calls"] - source.counters["ok"]
                    progress.update(done=writer.count, rounds=source.rounds, errors=errors)
                    wait_s = options["poll_interval_s"] - (time.monotonic() - round_started)
                    if deadline is not None:
                        wait_s = min(wait_s, deadline - time.monotonic())
                    shutdown.sleep(wait_s)
            finally:
                writer.close()
            interrupted = shutdown.requested.is_set()
        self.stdout.write(
            f"wrote {options['out']}: {writer.count} updates, {len(specs)} pairs"
            + (" (interrupted)" if interrupted else "")
        )
