"""manage.py sim_resolve --key K --kalshi yes|no --polymarket yes|no"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand

from config.errors import DomainError
from simulator import services
from simulator.management.commands.sim_start import command_error


class Command(BaseCommand):
    help = (
        "A pair's markets resolved: pay out its trades in every run ($1 per contract of each leg"
        " whose side won) and move the runs' balance and realised P&L. Trades already paid (by an"
        " earlier sim_resolve, or when ingest followed the markets to resolution) are not paid twice:"
        " if they were paid on other results, they are paid again by the difference (a correction)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--key", required=True, help="the pair's opportunity key")
        parser.add_argument("--kalshi", required=True, help="the Kalshi market's result: yes or no")
        parser.add_argument("--polymarket", required=True, help="the Polymarket market's result: yes or no")

    def handle(self, *args, **options):
        try:
            summary = services.resolve_pair(
                opportunity_key=options["key"],
                kalshi=options["kalshi"],
                polymarket=options["polymarket"],
                correction=True,
            )
        except (DomainError, ValidationError) as error:
            raise command_error(error) from None
        self.stdout.write(
            f"resolved {summary['trades']} trades in {summary['runs']} runs:"
            f" paid ${summary['payout_usd']}, realised P&L ${summary['pnl_usd']}"
        )
        if summary["corrected"]:
            self.stdout.write(
                f"corrected {summary['corrected']} trades paid before on other results (paid again by the difference)"
            )
        if summary["resolution_disagreement"]:
            self.stdout.write("the venues resolved the question differently: the pair is flagged")
