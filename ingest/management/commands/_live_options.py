"""Command-line options shared by the commands that poll the venues (record, ingest_run --live)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.management.base import CommandParser

from config.numbers import DecimalRule, option_type
from ingest.sources import LiveHosts

POLL_INTERVAL_S = DecimalRule(Decimal("0.01"), Decimal("3600"), places=3, unit="seconds")
# --duration-s of the polling commands: up to a year.
DURATION_S = DecimalRule(Decimal("0.001"), Decimal("31536000"), places=3, unit="seconds")


def add_live_arguments(parser: CommandParser) -> None:
    parser.add_argument(
        "--double-url",
        help="poll an exchange double at this base URL (http://127.0.0.1:PORT) for both venues",
    )
    parser.add_argument("--kalshi-host", help="Kalshi API base, e.g. .../trade-api/v2")
    parser.add_argument("--polymarket-host", help="Polymarket CLOB base URL")
    parser.add_argument(
        "--poll-interval-s",
        type=option_type(POLL_INTERVAL_S, float),
        default=1.0,
        help=f"seconds per polling round (default 1; {POLL_INTERVAL_S.accepted()})",
    )
    parser.add_argument(
        "--pairs", nargs="*", default=[], metavar="KEY", help="opportunity keys (default: every active pair)"
    )


def hosts_from_options(options: dict[str, Any]) -> LiveHosts:
    """--double-url, else --kalshi-host/--polymarket-host over the environment's hosts."""
    if options.get("double_url"):
        return LiveHosts.of_double(options["double_url"])
    default = LiveHosts.from_environment()
    return LiveHosts(
        kalshi=options.get("kalshi_host") or default.kalshi,
        polymarket=options.get("polymarket_host") or default.polymarket,
    )
