"""manage.py sim_arrivals: the arrival scheduler process (simulator/arrival_scheduler.py)."""

from __future__ import annotations

import gc
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.numbers import WholeRule, option_type
from config.shutdown import GracefulShutdown

RUNNERS = WholeRule(1, 64, unit="threads")
# A step due while runner threads hold the GIL waits for it at most this long (Python's default
# is 5 ms: half the lateness allowed).
SWITCH_INTERVAL_S = 0.0005


class Command(BaseCommand):
    requires_system_checks = []  # a scheduler started again after a crash takes steps sooner
    help = (
        "Run each traded order's arrival step at its arrival time, in this process, until stopped "
        "(SIMULATOR_ARRIVALS=scheduler: the workers hand the steps over through Redis)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--runners",
            type=option_type(RUNNERS),
            default=4,
            help=f"steps run at once, each on a database connection of its own (default 4; {RUNNERS.accepted()})",
        )

    def handle(self, *args, **options):
        from simulator.arrival_scheduler import ArrivalScheduler, redis_client

        if not settings.REDIS_URL:
            raise CommandError("REDIS_URL is not set: the scheduler takes its steps from Redis")
        if settings.SIMULATOR_ARRIVALS != "scheduler":
            self.stderr.write(
                f"SIMULATOR_ARRIVALS is {settings.SIMULATOR_ARRIVALS!r} here: the workers send steps "
                "to this process only when it is 'scheduler' in their settings"
            )
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        scheduler = ArrivalScheduler(redis_client(), runners=options["runners"])
        # What start-up allocated (Django, the apps, the engine's modules) is never garbage: out of
        # the collector's way, a full collection stays short (it walked all of it: pauses of tens
        # of milliseconds, every step behind it late).
        gc.collect()
        gc.freeze()
        with GracefulShutdown() as shutdown:
            scheduler.serve(shutdown.requested)
