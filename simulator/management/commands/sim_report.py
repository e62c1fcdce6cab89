"""manage.py sim_report --user U [--hours 24 --max-gap-s 120 --min-edge-cents 3]: the capture
report as a table, with the same parameter rules (and messages) as GET /simulator/report."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from simulator.api.serializers import ReportParamsSerializer
from simulator.report import build_report


class Command(BaseCommand):
    help = "Print how many success spans the user's simulator runs caught in the last hours."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="username (or numeric id)")
        parser.add_argument("--hours", default="24")
        parser.add_argument("--max-gap-s", default="120")
        parser.add_argument("--min-edge-cents", default="3")
        parser.add_argument("--now", help="ISO 8601 end of the window (default: now); for replays")

    def handle(self, *args: Any, **options: Any) -> None:
        user = self._user(options["user"])
        params = ReportParamsSerializer(
            data={
                "hours": options["hours"],
                "max_gap_s": options["max_gap_s"],
                "min_edge_cents": options["min_edge_cents"],
            }
        )
        if not params.is_valid():
            raise CommandError(
                "; ".join(f"{field}: {' '.join(map(str, errors))}" for field, errors in params.errors.items())
            )
        now = timezone.now()
        if options["now"]:
            now = parse_datetime(options["now"])
            if now is None or timezone.is_naive(now):
                raise CommandError("now: use an ISO 8601 time with a UTC offset, e.g. 2026-03-02T12:00:00Z")
        report = build_report(user=user, now=now, **params.validated_data)
        self.stdout.write(render(report))

    def _user(self, name: str):
        users = get_user_model().objects
        user = users.filter(username=name).first()
        if user is None and name.isdigit():
            user = users.filter(pk=int(name)).first()
        if user is None:
            raise CommandError(f"no user {name!r}: give a username or a user id")
        return user


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [headers, *[[str(value) for value in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _or_dash(value: Any) -> str:
    return "-" if value is None else str(value)


def _arrival_rows(report: dict[str, Any]) -> list[list[Any]]:
    outcomes = report["arrival_outcomes"]
    slippage = report["slippage_cents"]
    return [
        ["trades arrived", report["trades_arrived"]],
        ["trades in flight", report["trades_in_flight"]],
        [
            "full / partial / legged / missed",
            " / ".join(str(outcomes[k]) for k in ("full", "partial", "legged", "missed")),
        ],
        [
            "slippage p50 / p95",
            f"{_or_dash(slippage['p50'])} c / {_or_dash(slippage['p95'])} c ({slippage['trades']} trades)",
        ],
        ["legging incidents", report["legging_incidents"]],
        ["unwind cost", f"${report['unwind_cost_usd']}"],
    ]


def _resolution_rows(report: dict[str, Any]) -> list[list[Any]]:
    return [
        ["trades resolved", report["trades_resolved"]],
        ["realised P&L", f"${report['realised_pnl_usd']}"],
        [
            "resolution disagreements",
            f"{report['resolution_disagreements']} pairs ({report['resolution_disagreement_trades']} trades)",
        ],
        [
            "their P&L: realised / expected",
            f"${report['resolution_disagreement_pnl_usd']} / ${report['resolution_disagreement_expected_pnl_usd']}",
        ],
        ["disagreement cost", f"${report['resolution_disagreement_cost_usd']}"],
    ]


def render(report: dict[str, Any]) -> str:
    rate = report["capture_rate"]
    latency = report["latency_s"]
    summary = [
        ["window", f"{report['window_start']} .. {report['window_end']} ({report['hours']} h)"],
        ["max gap", f"{report['max_gap_s']} s"],
        ["min edge", f"{report['min_edge_cents']} c"],
        ["spans", report["spans"]],
        ["captured", report["captured"]],
        ["missed", report["missed"]],
        ["capture rate", "-" if rate is None else f"{rate * 100:.1f}%"],
        [
            "latency p50 / p95",
            f"{latency['p50'] if latency['p50'] is not None else '-'} s / "
            f"{latency['p95'] if latency['p95'] is not None else '-'} s",
        ],
        ["edge available", f"${report['edge_available_usd']}"],
        ["edge captured", f"${report['edge_captured_usd']}"],
        ["trades outside spans", report["trades_outside_spans"]],
    ]
    parts = [_table(["capture report", ""], summary)]
    if report["missed_reasons"]:
        parts.append(
            _table(["missed because", "spans"], [[k, v] for k, v in report["missed_reasons"].items()])
        )
    parts.append(_table(["execution at arrival", ""], _arrival_rows(report)))
    if report["missed_at_arrival"]:
        parts.append(
            _table(
                ["missed at arrival because", "trades"],
                [[k, v] for k, v in report["missed_at_arrival"].items()],
            )
        )
    parts.append(_table(["resolution", ""], _resolution_rows(report)))
    parts.append(
        _table(
            ["venue", "orders arrived", "latency p50 ms", "latency p99 ms"],
            [
                [venue, latency["orders"], _or_dash(latency["p50"]), _or_dash(latency["p99"])]
                for venue, latency in report["arrival_latency_ms"].items()
            ],
        )
    )
    if report["by_opportunity_key"]:
        parts.append(
            _table(
                ["opportunity key", "spans", "captured", "missed", "trades", "available $", "captured $"],
                [
                    [
                        r["opportunity_key"],
                        r["spans"],
                        r["captured"],
                        r["missed"],
                        r["trades"],
                        r["edge_available_usd"],
                        r["edge_captured_usd"],
                    ]
                    for r in report["by_opportunity_key"]
                ],
            )
        )
    if report["by_run"]:
        parts.append(
            _table(
                [
                    "run",
                    "label",
                    "status",
                    "trades",
                    "in spans",
                    "captured $",
                    "expected P&L $",
                    "realised P&L $",
                    "span skips",
                ],
                [
                    [
                        r["run_id"],
                        r["label"] or "-",
                        r["status"],
                        r["trades"],
                        r["trades_in_spans"],
                        r["edge_captured_usd"],
                        r["expected_pnl_usd"],
                        r["realised_pnl_usd"],
                        f"{r['span_skips']}/{r['span_decisions']}",
                    ]
                    for r in report["by_run"]
                ],
            )
        )
    return "\n\n".join(parts) + "\n"
