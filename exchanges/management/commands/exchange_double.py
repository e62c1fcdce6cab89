"""Run the exchange double (loopback Kalshi + Polymarket) in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.numbers import WholeRule, option_type
from config.shutdown import GracefulShutdown
from exchanges.double import ExchangeDouble, Scenario, demo_book_moves

PORT = WholeRule(0, 65535)


class Command(BaseCommand):
    help = (
        "Serve the exchange double for the official Kalshi and Polymarket clients, and both venues' market-data "
        "websockets, until Ctrl-C (or SIGTERM)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
        parser.add_argument(
            "--port",
            type=option_type(PORT),
            default=8765,
            help=f"port; 0 picks a free one (default 8765; {PORT.accepted()})",
        )
        parser.add_argument(
            "--ws-port",
            type=option_type(PORT),
            default=0,
            help=f"the websocket feeds' port (default 0: a free one, printed; {PORT.accepted()})",
        )
        parser.add_argument(
            "--scenario",
            type=Path,
            help="scenario file (.json, .yaml or .yml); default: the built-in demo of three paired markets",
        )
        parser.add_argument(
            "--demo-book-moves",
            action="store_true",
            help="also move books shortly after they are read, as the demo does (thinned Kalshi asks, "
            "Polymarket prices that jump); a scenario file can list its own under moves:",
        )
        parser.add_argument(
            "--kalshi-key",
            action="append",
            default=[],
            metavar="KEY_ID=PUBLIC_PEM_PATH",
            help="register a Kalshi API key id with its RSA public key (repeatable)",
        )

    def handle(self, *args: object, **options: object) -> None:
        scenario_path = options["scenario"]
        try:
            scenario = Scenario.load(scenario_path) if scenario_path else Scenario.demo()
        except (OSError, ValueError, TypeError) as exc:
            raise CommandError(f"cannot load scenario {scenario_path}: {exc}") from exc
        double = ExchangeDouble(
            scenario, host=options["host"], port=options["port"], ws_port=options["ws_port"]
        )
        if options["demo_book_moves"]:
            for move in demo_book_moves():
                double.add_book_move(move)
        for spec in options["kalshi_key"]:
            key_id, sep, pem_path = spec.partition("=")
            if not (key_id and sep and pem_path):
                raise CommandError(f"--kalshi-key wants KEY_ID=PUBLIC_PEM_PATH, got {spec!r}")
            try:
                double.state.register_kalshi_key(key_id, Path(pem_path).read_text())
            except OSError as exc:
                raise CommandError(f"cannot read Kalshi public key {pem_path}: {exc}") from exc
        with GracefulShutdown() as shutdown:
            try:
                double.start()
            except OSError as exc:
                raise CommandError(
                    f"cannot listen on {options['host']}:{options['port']} (websockets: {options['ws_port']}): {exc}"
                ) from exc
            try:
                self.stdout.write(f"Kalshi host:     {double.kalshi_host}")
                self.stdout.write(f"Polymarket host: {double.polymarket_host}")
                self.stdout.write(f"Kalshi websocket:     {double.kalshi_ws_url}")
                self.stdout.write(f"Polymarket websocket: {double.polymarket_ws_url}")
                self.stdout.write(
                    f"{len(scenario.kalshi_markets)} Kalshi markets, {len(scenario.polymarket_books)} "
                    f"Polymarket books, {len(double.book_moves)} book moves. Ctrl-C (or SIGTERM) to stop."
                )
                self.stdout.flush()
                shutdown.wait()
            finally:
                double.stop()
        self.stdout.write("Exchange double stopped.")
