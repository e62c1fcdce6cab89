"""Record what the live source sees into a compressed JSON-lines recording (ingest.recording)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.numbers import option_type
from config.progress import Progress
from config.shutdown import GracefulShutdown
from ingest.pairs import active_specs
from ingest.recording import RecordingWriter

from ._live_options import DURATION_S, add_live_arguments, hosts_from_options, live_book_source

REPORT_EVERY_S = 0.5


class Command(BaseCommand):
    help = (
        "Follow the active pairs' books on the venues' feeds (REST polling while a feed is down, or "
        "with --no-streams; or the exchange double) and write a recording, until --duration-s or "
        "Ctrl-C (or SIGTERM)."
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
            stopping = threading.Event()  # a signal, or the end of --duration-s
            shutdown.on_stop(stopping.set)
            source, notes = live_book_source(specs, options, sleep=lambda s: stopping.wait(max(0.0, s)))
            for note in notes:
                self.stdout.write(note)
            shutdown.on_stop(source.stop)
            written = threading.Lock()

            def write_updates() -> None:
                for update in source:
                    with written:
                        writer.append(update.raw)

            reader = threading.Thread(target=write_updates, name="record-source", daemon=True)
            reader.start()
            try:
                # The progress line ticks on time, not on updates: a quiet feed still shows rounds.
                while reader.is_alive() and (deadline is None or time.monotonic() < deadline):
                    wait_s = (
                        REPORT_EVERY_S
                        if deadline is None
                        else min(REPORT_EVERY_S, deadline - time.monotonic())
                    )
                    if shutdown.wait(max(0.0, wait_s)):
                        break
                    with written:
                        writer.flush()
                    errors = source.counters["calls"] - source.counters["ok"]
                    progress.update(done=writer.count, rounds=source.rounds, errors=errors)
            finally:
                stopping.set()
                source.stop()
                reader.join()
                writer.close()
            interrupted = shutdown.requested.is_set()
        self.stdout.write(
            f"wrote {options['out']}: {writer.count} updates, {len(specs)} pairs"
            + (" (interrupted)" if interrupted else "")
        )
