"""manage.py sim_status --user U: the running runs and the latest trades."""

from django.core.management.base import BaseCommand

from config.numbers import WholeRule, option_type
from simulator import selectors
from simulator.core import trade_status
from simulator.management.commands.sim_runs import COLUMNS, run_row, table
from simulator.management.commands.sim_start import user_named
from simulator.models import SimulatorTrade

TRADES = WholeRule(0, 10_000, unit="trades")
TRADE_COLUMNS = ("id", "run", "key", "status", "matched", "fill", "cost", "exp. P&L", "decided")


class Command(BaseCommand):
    help = "Show a user's running simulator runs and recent trades."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="username")
        parser.add_argument(
            "--trades",
            type=option_type(TRADES),
            default=10,
            help=f"how many recent trades (default 10; {TRADES.accepted()})",
        )

    def handle(self, *args, **options):
        from django.utils import timezone

        user = user_named(options["user"])
        runs = list(selectors.running_runs(user_id=user.pk).order_by("-started_at"))
        if runs:
            self.stdout.write(f"running runs of {user.username}:")
            self.stdout.write(table(COLUMNS, [run_row(run) for run in runs]))
        else:
            self.stdout.write(f"{user.username} has no running simulator run")
        trades = SimulatorTrade.objects.filter(user=user).order_by("-decided_at", "-id")[: options["trades"]]
        now = timezone.now()
        rows = [
            (
                str(trade.pk),
                str(trade.run_id),
                trade.opportunity_key,
                trade_status(now, trade.executed_at, trade.settled_at),
                str(trade.matched_size),
                f"{trade.fill_pct:.0%}",
                f"${trade.cost_usd}",
                f"${trade.expected_pnl_usd}",
                trade.decided_at.strftime("%Y-%m-%d %H:%M:%S"),
            )
            for trade in trades
        ]
        if rows:
            self.stdout.write("recent trades:")
            self.stdout.write(table(TRADE_COLUMNS, rows))
