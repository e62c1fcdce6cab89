"""manage.py sim_start --user U --starting-usd 1000 [--opportunity-key K ...] [--duration-minutes N]
[--kalshi-order-type ioc|fok] [--polymarket-order-type fak|fok] [--sequencing S] [--unhedged unwind|carry]
[--kalshi-latency-ms N] [--polymarket-latency-ms N]"""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from config.errors import DomainError
from config.numbers import option_type
from simulator import presenters, run_settings, services


def user_named(username: str):
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"user: no user named {username!r}")
    return user


def command_error(error: ValidationError | DomainError) -> CommandError:
    """The service's field-named messages, one line per field."""
    if isinstance(error, DomainError):
        return CommandError(f"{error.field}: {error.message}")
    lines = [f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items()]
    return CommandError("; ".join(lines))


class Command(BaseCommand):
    help = "Start a simulator run for a user (the same checks and messages as POST /simulator/start)."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="username")
        parser.add_argument("--starting-usd", required=True)
        parser.add_argument("--opportunity-key", action="append", dest="opportunity_keys", default=None)
        parser.add_argument(
            "--duration-minutes", default=None, help="0 or omitted: until stopped (max 7 days)"
        )
        parser.add_argument("--label", default="")
        parser.add_argument("--notes", default="")
        for name, choices in run_settings.CHOICES.items():
            parser.add_argument(
                f"--{name.replace('_', '-')}",
                choices=choices,
                default=run_settings.DEFAULTS[name],
                help=f"{run_settings.HELP[name]} (default {run_settings.DEFAULTS[name]})",
            )
        for name, rule in run_settings.LATENCY_RULES.items():
            parser.add_argument(
                f"--{name.replace('_', '-')}",
                type=option_type(rule),
                metavar="MS",
                default=run_settings.DEFAULTS[name],
                help=f"{run_settings.HELP[name]} (default {run_settings.DEFAULTS[name]}; {rule.accepted()})",
            )

    def handle(self, *args, **options):
        user = user_named(options["user"])
        try:
            run, warnings = services.start_run(
                user=user,
                starting_usd=options["starting_usd"],
                opportunity_keys=options["opportunity_keys"],
                duration_minutes=options["duration_minutes"],
                label=options["label"],
                notes=options["notes"],
                **{name: options[name] for name in run_settings.FIELDS},
            )
        except (ValidationError, DomainError) as error:
            raise command_error(error) from None
        keys = ", ".join(run.opportunity_keys) or "all"
        self.stdout.write(
            f"started run {run.pk} for {user.username}: ${run.starting_usd}, keys {keys}, "
            f"ends {run.ends_at.isoformat()}; execution {run_settings.summary(presenters.run_execution_json(run))}"
        )
        for warning in warnings:
            self.stderr.write(f"warning: {warning}")
