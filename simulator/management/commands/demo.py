"""The one-command demo, everything in one process on the embedded default.

Threads: the exchange double (loopback, fixed port, its websocket feeds on a free port), the
replay pacing the bundled recording as if live into the double's books, ingest reading the
double's two websocket feeds as live ingest reads the venues' (ingest.streams.StreamSource, REST
per venue while its feed is down; stream status published for /healthz), the lifecycle follower,
the arrival timer, and daphne in the foreground. A replayed book thus reaches the double first and
ingest through the feed, and exchange validation asks the same double. Tasks run in-process, so
each intent is decided on the ingest thread; each order then arrives on the timer thread at its
arrival time and meets the double's book as the replay has moved it by then. No child processes.

SIGINT (Ctrl-C) or SIGTERM, whatever disposition the process inherited, stops everything in
order: daphne stops listening (its reactor runs without signal handlers of its own), the replay
and ingest threads finish the update in hand, the double stops, database connections close, and
the last line says "demo stopped".
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections, transaction

from accounts import services as account_services
from config.numbers import WholeRule, option_type
from config.shutdown import GracefulShutdown
from exchanges.double import ExchangeDouble, KalshiMarket, PolymarketBook, Scenario, demo_book_moves
from exchanges.testing import polymarket_address
from ingest.detector import PairSpec
from ingest.lifecycle import LifecycleFollower, LifecycleThread, on_lifecycle_event
from ingest.live import mirror_to_double
from ingest.models import MarketPair
from ingest.pairs import import_pairs_file
from ingest.recording import REPLAY_SPEED, Replayer, pairs_of, read_recording
from ingest.services import IngestPipeline, run_source
from ingest.sources import LiveHosts
from ingest.streams import KalshiStreamKey, StreamSource
from simulator import backtests, intake, selectors, services
from simulator.arrival_timer import timer as arrival_timer

logger = logging.getLogger(__name__)

DEMO_USERNAME = "demo"
DEMO_KALSHI_KEY_ID = "demo-kalshi-key"
BUNDLED_RECORDING = Path(settings.BASE_DIR) / "ingest" / "data" / "demo_recording.jsonl.gz"
BUNDLED_PAIRS = Path(settings.BASE_DIR) / "ingest" / "fixtures" / "demo_pairs.yaml"
PORT = WholeRule(1, 65535)
DOUBLE_PORT = WholeRule(0, 65535)


def _demo_keys(var_dir: Path) -> tuple[str, str, str]:
    """(kalshi private PEM, kalshi public PEM, polymarket hex key), kept in var/ across runs."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem_file, poly_file = var_dir / "demo_kalshi_key.pem", var_dir / "demo_polymarket_key.hex"
    if not pem_file.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        pem_file.write_bytes(pem)
        pem_file.chmod(0o600)
    if not poly_file.exists():
        poly_file.write_text("0x" + secrets.token_hex(32))
        poly_file.chmod(0o600)
    private_pem = pem_file.read_text()
    public = serialization.load_pem_private_key(private_pem.encode(), password=None).public_key()
    public_pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return private_pem, public_pem, poly_file.read_text().strip()


def serve_daphne(host: str, port: int, shutdown: GracefulShutdown) -> None:
    """daphne's command line, in this thread, until `shutdown` is requested.

    The reactor's own signal handlers stay off (with SIGINT inherited ignored it would install
    none for it): a requested stop hands `reactor.stop` to the reactor thread instead.
    """
    from daphne.cli import CommandLineInterface
    from daphne.server import Server
    from twisted.internet import reactor
    from twisted.internet.error import ReactorNotRunning

    def stop_reactor() -> None:
        with contextlib.suppress(ReactorNotRunning):  # already stopping (e.g. a failed listen)
            reactor.stop()

    cli = CommandLineInterface()
    cli.server_class = functools.partial(Server, signal_handlers=False)
    shutdown.on_stop(lambda: reactor.callFromThread(stop_reactor))
    cli.run(["-b", host, "-p", str(port), "config.asgi:application"])


def as_if_live(path: Path, *, speed: float, stop: threading.Event) -> Iterator[dict[str, Any]]:
    """The recording's updates re-stamped onto the wall clock, `speed` times compressed, looping.

    Re-stamping keeps spans, intents and the 24 h report in "now" rather than the day the
    recording was made; compressing lets a one-hour recording show its spans in minutes.
    """
    while not stop.is_set():
        _header, updates = read_recording(path)
        start_ms, first_t = int(time.time() * 1000), None
        for update in updates:
            if stop.is_set():
                return
            first_t = update["t"] if first_t is None else first_t
            shifted = dict(update)
            for stamp in ("t", "vts"):
                if stamp in shifted:
                    shifted[stamp] = start_ms + int((shifted[stamp] - first_t) / speed)
            yield shifted


def _markets_in_double(double: ExchangeDouble, pairs: list[PairSpec]) -> None:
    """The replayed pairs' Kalshi markets (books empty until the replay sets them) and each active
    pair's two tokens as one Polymarket market (a condition id, the pair's or one made from its
    key), so the feeds have every book to subscribe to from the start, and the double can resolve
    a market and serve GET /markets/{condition_id}."""
    for spec in pairs:
        if double.state.kalshi_market(spec.kalshi_ticker) is None:
            double.state.add_kalshi_market(KalshiMarket(ticker=spec.kalshi_ticker))
    for pair in MarketPair.objects.filter(active=True):
        if not pair.poly_condition_id:
            pair.poly_condition_id = "0x" + hashlib.sha256(pair.opportunity_key.encode()).hexdigest()
            pair.save(update_fields=["poly_condition_id"])
        for token, outcome in ((pair.poly_yes_token, "Yes"), (pair.poly_no_token, "No")):
            double.state.add_polymarket_book(
                PolymarketBook(token_id=token, market=pair.poly_condition_id, outcome=outcome)
            )


class Command(BaseCommand):
    help = (
        "Run the demo: demo user and secrets, market pairs, the exchange double, ingest replaying "
        "the bundled recording as if live, a simulator run, and daphne. Ctrl-C (or SIGTERM) stops "
        "everything."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument(
            "--port", type=option_type(PORT), default=8000, help=f"the web server's port ({PORT.accepted()})"
        )
        parser.add_argument(
            "--double-port",
            type=option_type(DOUBLE_PORT),
            default=8765,
            help=f"the exchange double's port; 0 picks a free one ({DOUBLE_PORT.accepted()})",
        )
        parser.add_argument("--recording", type=Path, default=BUNDLED_RECORDING)
        parser.add_argument("--pairs", type=Path, default=BUNDLED_PAIRS)
        parser.add_argument(
            "--speed",
            type=option_type(REPLAY_SPEED, float),
            default=10.0,
            help=f"time compression of the replay (default 10x; {REPLAY_SPEED.accepted()})",
        )
        parser.add_argument("--no-serve", action="store_true", help="run double and ingest only")
        parser.add_argument(
            "--no-book-moves",
            action="store_true",
            help="serve the recording's books unmoved (by default the double thins or jumps a book "
            "shortly after some reads, so orders meet a book that moved)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["recording"].is_file():
            raise CommandError(f"--recording: no such file {options['recording']}")
        # No workers here: orders arrive on this process's timer thread, at their arrival time.
        settings.SIMULATOR_ARRIVALS = "timer"
        # Decisions and arrivals read the double's books over REST, as each read is what sets off
        # the double's book moves (the demo's slippage and partial fills).
        settings.SIMULATOR_STREAM_BOOKS = False
        with GracefulShutdown() as shutdown:
            self._run(options, shutdown)

    def _run(self, options: dict[str, Any], shutdown: GracefulShutdown) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        # Backtests run on threads of the demo's process: those a previous demo left unfinished
        # ended with it.
        backtests.fail_stalled(stall_s=0, queued_too=True)
        import_pairs_file(path=options["pairs"])

        var_dir = Path(settings.BASE_DIR) / "var"
        var_dir.mkdir(exist_ok=True)
        kalshi_pem, kalshi_public_pem, poly_key = _demo_keys(var_dir)
        double = ExchangeDouble(Scenario(), host="127.0.0.1", port=options["double_port"]).start()
        double.state.register_kalshi_key(DEMO_KALSHI_KEY_ID, kalshi_public_pem, balance_cents=2_500_000)
        double.state.set_polymarket_balance(polymarket_address(poly_key), 25_000 * 10**6)
        for move in [] if options["no_book_moves"] else demo_book_moves():
            double.add_book_move(move)
        pairs = pairs_of(read_recording(options["recording"])[0])
        _markets_in_double(double, pairs)
        hosts = LiveHosts.of_double(double)
        follower = LifecycleThread(LifecycleFollower(hosts=hosts))
        # Ingest reads the double's feeds as live ingest reads the venues' (the Kalshi feed is
        # signed with the demo's key); lifecycle events pay resolved pairs on the ingest thread.
        # REST stands in only for a feed that is not up after 5 s: a REST round at start would
        # count as book reads and shift which trades meet the book moves.
        source = StreamSource(
            pairs,
            hosts=hosts,
            kalshi_key=KalshiStreamKey(DEMO_KALSHI_KEY_ID, kalshi_pem),
            rest_after_s=5.0,
            on_lifecycle=on_lifecycle_event,
        )
        shutdown.on_stop(source.stop)
        replay = threading.Thread(
            target=self._replay, args=(options, double, shutdown), name="demo-replay", daemon=True
        )
        ingest = threading.Thread(target=self._ingest, args=(source,), name="demo-ingest", daemon=True)
        url = f"http://{options['host']}:{options['port']}/simulator/"
        try:
            password = self._demo_user(kalshi_pem, poly_key, double)
            self.stdout.write(
                f"exchange double on {double.base_url}  (kalshi {double.kalshi_host}, polymarket {double.polymarket_host})"
            )
            # Orders a previous demo left on their way arrive now, against today's books.
            intake.redispatch_overdue_arrivals(late_s=0)
            replay.start()
            ingest.start()
            follower.start()  # markets resolved in the double pay their trades (ingest.lifecycle)
            self.stdout.write(self.style.SUCCESS(f"Open {url}  and log in as  {DEMO_USERNAME} / {password}"))
            self.stdout.flush()
            if options["no_serve"]:
                while ingest.is_alive() and not shutdown.wait(0.5):
                    pass
            else:
                call_command("collectstatic", interactive=False, verbosity=0)
                if not shutdown.requested.is_set():
                    serve_daphne(options["host"], options["port"], shutdown)
        finally:
            shutdown.request_stop("demo_ending")  # also when daphne ended on its own (a failed listen)
            for thread in (replay, ingest):
                if thread.is_alive():
                    thread.join(timeout=10)
            follower.stop()
            if follower.is_alive():
                follower.join(timeout=10)
            arrival_timer.stop()  # before the double: an order left on its way arrives at the next start
            double.stop()
            connections.close_all()
            self.stdout.write("demo stopped: daphne, ingest and the exchange double are down")

    def _demo_user(self, kalshi_pem: str, poly_key: str, double: ExchangeDouble) -> str:
        password = secrets.token_urlsafe(9)
        with transaction.atomic():
            user, _ = get_user_model().objects.get_or_create(username=DEMO_USERNAME)
            user.set_password(password)
            user.save()
            # $100 legs mostly fit the recorded books' depth: trades fill in full as well as in part.
            account_services.update_profile(
                user=user, min_net_edge_cents="1.00", max_leg_usd="100.00", daily_cap_usd="5000.00"
            )
            account_services.set_secret(
                user=user,
                exchange="kalshi",
                api_key=DEMO_KALSHI_KEY_ID,
                extra={"private_key": kalshi_pem, "host": double.kalshi_host},
            )
            account_services.set_secret(
                user=user,
                exchange="polymarket",
                extra={"private_key": poly_key, "host": double.polymarket_host},
            )
        if not selectors.latest_running_run(user_id=user.pk):
            services.start_run(
                user=user, starting_usd=Decimal("10000"), label="demo", notes="started by manage.py demo"
            )
        return password

    def _replay(self, options: dict[str, Any], double: ExchangeDouble, shutdown: GracefulShutdown) -> None:
        """The recording, paced as if live, into the double's books (its feeds push each change)."""
        try:
            paced = Replayer(
                as_if_live(options["recording"], speed=options["speed"], stop=shutdown.requested),
                speed=1.0,
                sleep=shutdown.sleep,
            )
            for update in paced:
                mirror_to_double(double.state, update)
        except Exception:
            logger.exception("event=demo_replay_failed")

    def _ingest(self, source: StreamSource) -> None:
        try:
            pipeline = IngestPipeline(source.pairs, threshold_cents=Decimal("1"), cooldown_ms=5_000)
            pipeline.restore()
            run_source(
                source,
                pipeline,
                on_progress=lambda p: logger.info(
                    "event=ingest_progress updates=%s updates_per_s=%.0f spans_open=%s intents=%s",
                    p.updates,
                    p.updates_per_s,
                    p.spans_open,
                    p.intents,
                ),
                progress_every_s=30.0,
            )
        except Exception:
            logger.exception("event=demo_ingest_failed")
        finally:
            connections.close_all()  # this thread's own
