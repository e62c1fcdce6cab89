"""manage.py sim_runs --user U: every run of the user as a table, newest first."""

from django.core.management.base import BaseCommand

from config.numbers import WholeRule, option_type
from simulator import presenters, run_settings, selectors
from simulator.management.commands.sim_start import user_named

LIMIT = WholeRule(1, 10_000, unit="runs")

COLUMNS = (
    "id",
    "status",
    "label",
    "keys",
    "starting",
    "balance",
    "exp. P&L",
    "trades",
    "decisions",
    "started",
    "ends",
    "execution",
)


def run_row(run) -> tuple[str, ...]:
    return (
        str(run.pk),
        run.status,
        run.label or "-",
        ",".join(run.opportunity_keys) or "all",
        f"${run.starting_usd}",
        f"${run.balance_usd}",
        f"${run.expected_pnl_usd}",
        str(run.trade_count),
        str(run.decision_count),
        run.started_at.strftime("%Y-%m-%d %H:%M"),
        run.ends_at.strftime("%Y-%m-%d %H:%M"),
        run_settings.summary(presenters.run_execution_json(run)),
    )


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in (header, *rows)
    ]
    return "\n".join(line.rstrip() for line in lines)


class Command(BaseCommand):
    help = "List a user's simulator runs."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="username")
        parser.add_argument(
            "--limit",
            type=option_type(LIMIT),
            default=50,
            help=f"newest first (default 50; {LIMIT.accepted()})",
        )

    def handle(self, *args, **options):
        user = user_named(options["user"])
        runs = list(selectors.user_runs(user_id=user.pk)[: options["limit"]])
        if not runs:
            self.stdout.write(f"{user.username} has no simulator runs")
            return
        self.stdout.write(table(COLUMNS, [run_row(run) for run in runs]))
