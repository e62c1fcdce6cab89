"""manage.py sim_stop --user U [--run-id N] [--reason R]"""

from django.core.management.base import BaseCommand

from config.errors import DomainError
from config.numbers import option_type
from simulator import services
from simulator.management.commands.sim_start import command_error, user_named
from simulator.services import RUN_ID


class Command(BaseCommand):
    help = "Stop a user's simulator run (no --run-id: the latest running one)."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="username")
        parser.add_argument(
            "--run-id",
            type=option_type(RUN_ID),
            default=None,
            help=f"default: the latest running run ({RUN_ID.accepted()})",
        )
        parser.add_argument("--reason", default="stopped by user")

    def handle(self, *args, **options):
        user = user_named(options["user"])
        try:
            run = services.stop_run(user=user, run_id=options["run_id"], reason=options["reason"])
        except DomainError as error:
            raise command_error(error) from None
        self.stdout.write(f"stopped run {run.pk}: balance ${run.balance_usd}, {run.trade_count} trades")
