"""Command-line options shared by the commands that read the live venues (record, ingest_run --live)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from django.core.management.base import CommandParser

from config.numbers import DecimalRule, option_type
from exchanges.ratelimit import LocalRateLimiter
from exchanges.streams import LifecycleEvent
from ingest.detector import PairSpec
from ingest.sources import BookSource, LiveHosts, LiveSource
from ingest.streams import NO_KALSHI_KEY, StreamSource, kalshi_stream_key_from_environment

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
        "--no-streams",
        action="store_true",
        help="poll the venues' REST APIs only (default: their websocket feeds, REST while a feed is down)",
    )
    parser.add_argument(
        "--kalshi-ws-url", help="Kalshi websocket feed (default: INGEST_KALSHI_WS_URL, else prod)"
    )
    parser.add_argument(
        "--polymarket-ws-url",
        help="Polymarket market-channel feed (default: INGEST_POLYMARKET_WS_URL, else prod)",
    )
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
    """--double-url, else --kalshi-host/--polymarket-host over the environment's hosts; the feeds
    from --kalshi-ws-url/--polymarket-ws-url over the environment's."""
    kalshi_ws = options.get("kalshi_ws_url") or os.environ.get("INGEST_KALSHI_WS_URL", "").strip()
    polymarket_ws = options.get("polymarket_ws_url") or os.environ.get("INGEST_POLYMARKET_WS_URL", "").strip()
    if options.get("double_url"):
        return LiveHosts.of_double(options["double_url"], kalshi_ws=kalshi_ws, polymarket_ws=polymarket_ws)
    default = LiveHosts.from_environment()
    return LiveHosts(
        kalshi=options.get("kalshi_host") or default.kalshi,
        polymarket=options.get("polymarket_host") or default.polymarket,
        kalshi_ws=kalshi_ws or default.kalshi_ws,
        polymarket_ws=polymarket_ws or default.polymarket_ws,
    )


def live_book_source(
    specs: Sequence[PairSpec],
    options: dict[str, Any],
    *,
    sleep: Callable[[float], None],
    shard: str = "1/1",
    on_lifecycle: Callable[[LifecycleEvent], object] | None = None,
) -> tuple[BookSource, list[str]]:
    """The venues' streams with REST fallback (or, with --no-streams, REST polling alone), and
    what the user should know about it (a venue without a stream, and why)."""
    hosts = hosts_from_options(options)
    # The venues' request pacing keeps real sleeps; only the pause between rounds ends early.
    if options.get("no_streams"):
        source = LiveSource(
            specs,
            hosts=hosts,
            poll_interval_s=options["poll_interval_s"],
            sleep=sleep,
            rate_limiter=LocalRateLimiter(),
        )
        return source, []
    key, why_no_key = kalshi_stream_key_from_environment()
    stream_source = StreamSource(
        specs,
        hosts=hosts,
        kalshi_key=key,
        poll_interval_s=options["poll_interval_s"],
        shard=shard,
        on_lifecycle=on_lifecycle,
    )
    notes = [
        f"{venue}: no stream ({why_no_key if why == NO_KALSHI_KEY else why}), polling its REST API"
        for venue, why in stream_source.why_no_stream.items()
    ]
    return stream_source, notes
