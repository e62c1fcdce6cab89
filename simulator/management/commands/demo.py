"""The one-command demo: a demo user, then daphne on 127.0.0.1:8000."""

import secrets

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts import services as account_services

DEMO_USERNAME = "demo"


class Command(BaseCommand):
    help = "Run the demo: create the demo user (password printed) and serve on 127.0.0.1:8000."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--host", default="127.0.0.1")

    def handle(self, *args, host: str, port: int, **options):
        password = secrets.token_urlsafe(9)
        with transaction.atomic():
            user, _ = get_user_model().objects.get_or_create(username=DEMO_USERNAME)
            user.set_password(password)
            user.save()
            account_services.update_profile(
                user=user, min_net_edge_cents="1.00", max_leg_usd="250.00", daily_cap_usd="5000.00"
            )
        url = f"http://{host}:{port}/simulator/"
        self.stdout.write(self.style.SUCCESS(f"Open {url}  and log in as  {DEMO_USERNAME} / {password}"))
        call_command("collectstatic", interactive=False, verbosity=0)
        from daphne.cli import CommandLineInterface

        CommandLineInterface().run(["-b", host, "-p", str(port), "config.asgi:application"])
