"""The ingest loop in one process: a recording replayed (as if live) or the live venues polled."""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.numbers import DecimalRule, WholeRule, option_type
from config.progress import Progress
from config.shutdown import GracefulShutdown
from ingest.lifecycle import LifecycleFollower, LifecycleThread, on_lifecycle_event
from ingest.pairs import active_specs
from ingest.recording import REPLAY_SPEED, RecordingError
from ingest.services import IngestPipeline, LoopProgress, run_source
from ingest.shards import EVERY_PAIR, Shard, parse_shard, shard_pairs
from ingest.sources import BookSource, BookUpdate, ReplaySource
from ingest.streams import StreamSource
from simulator import intake

from ._live_options import DURATION_S, add_live_arguments, hosts_from_options, live_book_source

# 4 places: what the success-span column keeps.
THRESHOLD_CENTS = DecimalRule(Decimal("0"), Decimal("100"), places=4, unit="cents")
MAX_SKEW_MS = WholeRule(0, 3_600_000, unit="milliseconds")
COOLDOWN_S = DecimalRule(Decimal("0"), Decimal("86400"), places=3, unit="seconds")
STATS_EVERY_S = DecimalRule(Decimal("0"), Decimal("86400"), places=3, unit="seconds")
_speed_number = option_type(REPLAY_SPEED, float)


def shard_option(text: str) -> Shard:
    try:
        return parse_shard(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def replay_speed(text: str) -> float | None:
    """'max' (None: as fast as possible) or a speed-up factor."""
    if text.strip() == "max":
        return None
    try:
        return _speed_number(text)
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"{error}, or max") from None


class Command(BaseCommand):
    help = (
        "Run ingest: books -> success spans -> execution intents, persisted and dispatched. "
        "--replay FILE [--speed N|max] or --live (which also follows the pairs' markets to resolution "
        "and pays their trades, every INGEST_LIFECYCLE_S seconds). Ctrl-C (or SIGTERM) stops cleanly "
        "(open spans resume on restart)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        mode = parser.add_mutually_exclusive_group(required=True)
        mode.add_argument("--replay", type=Path, metavar="FILE", help="a recording (.jsonl.gz)")
        mode.add_argument(
            "--live",
            action="store_true",
            help="the venues' feeds, or REST polling (--no-streams; or --double-url)",
        )
        parser.add_argument(
            "--speed",
            type=replay_speed,
            default=1.0,
            help=f"replay speed: 1 = as recorded, N = N x, max ({REPLAY_SPEED.accepted()})",
        )
        parser.add_argument(
            "--threshold-cents",
            type=option_type(THRESHOLD_CENTS),
            default=Decimal("1"),
            help=f"success-span threshold, net edge ({THRESHOLD_CENTS.accepted()})",
        )
        parser.add_argument(
            "--max-skew-ms",
            type=option_type(MAX_SKEW_MS),
            default=2000,
            help=f"max time between the two legs' books ({MAX_SKEW_MS.accepted()})",
        )
        parser.add_argument(
            "--cooldown-s",
            type=option_type(COOLDOWN_S, float),
            default=10.0,
            help=f"per user and pair, between intents ({COOLDOWN_S.accepted()})",
        )
        parser.add_argument(
            "--stats-every-s",
            type=option_type(STATS_EVERY_S, float),
            default=5.0,
            help=f"progress line period when not on a terminal ({STATS_EVERY_S.accepted()})",
        )
        parser.add_argument(
            "--duration-s",
            type=option_type(DURATION_S, float),
            help=f"live: stop after this many seconds ({DURATION_S.accepted()})",
        )
        parser.add_argument(
            "--recorded-clock",
            action="store_true",
            help="replay: decide and fill on the recording's own time against its books, in this "
            "process (as a backtest does), instead of on the wall clock against the venues",
        )
        parser.add_argument(
            "--keep-open",
            action="store_true",
            help="replay: leave spans open at the end (default: close them)",
        )
        parser.add_argument(
            "--shard",
            type=shard_option,
            metavar="I/N",
            help="live: poll only shard I of N of the active pairs (a stable split by opportunity key), "
            "so N processes share them; default: every pair",
        )
        parser.add_argument(
            "--pairs-every-s",
            type=option_type(STATS_EVERY_S, float),
            default=30.0,
            help="live: look for pairs imported, changed or deactivated this often, and follow them "
            f"(default 30; {STATS_EVERY_S.accepted()})",
        )
        add_live_arguments(parser)

    def handle(self, *args: object, **options: object) -> None:
        if options["recorded_clock"] and not options["replay"]:
            raise CommandError("--recorded-clock: applies to --replay only")
        if options["recorded_clock"] and options["speed"]:
            options["speed"] = None  # recorded time needs no pacing
        with intake.recording_clock() if options["recorded_clock"] else nullcontext() as read_update:
            self._run(options, read_update)

    def _run(self, options: dict, read_update: Callable[[BookUpdate], None] | None) -> None:
        threshold = options["threshold_cents"]
        with GracefulShutdown() as shutdown:
            source = self._source(options, sleep=shutdown.sleep)
            shutdown.on_stop(source.stop)
            pipeline = IngestPipeline(
                source.pairs, threshold_cents=threshold, cooldown_ms=int(options["cooldown_s"] * 1000)
            )
            pipeline.restore()
            mode = (
                f"replay {options['replay']} speed {options['speed'] or 'max'}"
                if options["replay"]
                else "live"
            )
            if options["shard"]:
                mode += f" shard {options['shard']}"
            self.stdout.write(f"ingest {mode}: {len(source.pairs)} pairs, threshold {threshold}c")
            self.stdout.flush()
            follower = None
            if options["live"]:  # markets followed to resolution beside the books (ingest.lifecycle)
                follower = LifecycleThread(
                    LifecycleFollower(hosts=hosts_from_options(options), shard=options["shard"] or EVERY_PAIR)
                )
                shutdown.on_stop(follower.stop)
                follower.start()
            started = time.monotonic()
            duration_s = options["duration_s"]
            pairs_checked = [started]

            def on_update(update: BookUpdate) -> None:
                if read_update is not None:
                    read_update(update)
                now = time.monotonic()
                if duration_s is not None and now - started >= duration_s:
                    source.stop()
                if options["live"] and now - pairs_checked[0] >= options["pairs_every_s"]:
                    pairs_checked[0] = now
                    self._follow_active_pairs(options, source, pipeline)

            every_s = options["stats_every_s"]
            what = "ingest replay" if options["replay"] else "ingest live"
            with Progress(what, unit="updates", stream=self.stdout, every_s=every_s) as progress:
                final = run_source(
                    source,
                    pipeline,
                    on_progress=partial(self._show_progress, progress),
                    progress_every_s=progress.period_s,
                    on_update=on_update,
                )
            if follower is not None:
                follower.stop()
                follower.join()
            interrupted = shutdown.requested.is_set()
            if options["replay"] and not interrupted and not options["keep_open"]:
                pipeline.finish(reason="end_of_replay")
            stats = pipeline.stats
            self.stdout.write(
                f"{'interrupted' if interrupted else 'done'}: {stats.updates} updates in "
                f"{final.elapsed_s:.1f} s, spans opened {stats.spans_opened}, closed {stats.spans_closed}, "
                f"open {len(pipeline.spans.open_keys())}, intents {stats.intents}"
            )

    def _follow_active_pairs(self, options: dict, source: BookSource, pipeline: IngestPipeline) -> None:
        """Pairs imported, changed or deactivated since the last look: the detector and the
        streams' subscriptions follow them (on the ingest thread, between two updates)."""
        specs = active_specs(keys=options["pairs"] or None, max_skew_ms=options["max_skew_ms"])
        specs = shard_pairs(specs, options["shard"] or EVERY_PAIR)
        if specs == source.pairs:
            return
        pipeline.set_pairs(specs)
        if isinstance(source, StreamSource):
            source.set_pairs(specs)
        else:
            source.pairs = specs
        self.stdout.write(f"ingest live: now {len(specs)} pairs")

    def _source(self, options: dict, *, sleep: Callable[[float], None]) -> BookSource:
        """The book source; `sleep` paces it (a replay's gaps, the pause between live rounds)."""
        if options["replay"]:
            if options["shard"] is not None:
                raise CommandError("--shard: applies to --live only")
            try:
                source = ReplaySource(options["replay"], speed=options["speed"], sleep=sleep)
            except (OSError, RecordingError) as exc:
                raise CommandError(f"--replay: {exc}") from exc
            source.pairs = [dataclasses.replace(p, max_skew_ms=options["max_skew_ms"]) for p in source.pairs]
            if options["pairs"]:
                source.pairs = [p for p in source.pairs if p.opportunity_key in options["pairs"]]
            return source
        specs = active_specs(keys=options["pairs"] or None, max_skew_ms=options["max_skew_ms"])
        if not specs:
            raise CommandError("no active market pairs: import some with pairs_import")
        shard = options["shard"] or EVERY_PAIR
        specs = shard_pairs(specs, shard)
        if not specs:
            raise CommandError(f"--shard: shard {shard} owns none of the active pairs")
        source, notes = live_book_source(
            specs, options, sleep=sleep, shard=str(shard), on_lifecycle=on_lifecycle_event
        )
        for note in notes:
            self.stdout.write(note)
        return source

    def _show_progress(self, progress: Progress, loop: LoopProgress) -> None:
        data_at = datetime.fromtimestamp(loop.data_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        progress.update(
            done=loop.updates,
            pairs_fresh=f"{loop.pairs_fresh}/{loop.pairs}",
            spans_open=loop.spans_open,
            spans_opened=loop.spans_opened,
            intents=loop.intents,
            at=data_at,
        )
