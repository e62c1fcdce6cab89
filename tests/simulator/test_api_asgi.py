"""The API through the ASGI application (as uvicorn serves it) answers the same bytes as through
the WSGI test client: views that let go of their objects after rendering still render all."""

import asyncio
from datetime import timedelta

import pytest
from channels.testing import HttpCommunicator
from django.conf import settings
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from config.asgi import application
from tests.simulator.surface_fixtures import make_run, make_trade

pytestmark = pytest.mark.django_db(transaction=True)  # the ASGI request runs in its own thread


@pytest.fixture(autouse=True)
def close_thread_connections(monkeypatch):
    """The request's thread would otherwise keep its connection open past the test database's
    teardown."""
    monkeypatch.setitem(settings.DATABASES["default"], "CONN_MAX_AGE", 0)


def test_status_and_trade_pages_are_the_same_bytes_under_asgi(user):
    run = make_run(user)
    base = timezone.now() - timedelta(hours=1)
    for n in range(55):
        make_trade(run, executed_at=base + timedelta(seconds=n))
    auth = {"authorization": f"Token {Token.objects.create(user=user).key}"}
    paths = [
        "/simulator/status",
        f"/simulator/runs/{run.pk}/trades",
        f"/simulator/runs/{run.pk}/trades?page=2",
    ]

    headers = [(b"host", b"testserver"), *((name.encode(), value.encode()) for name, value in auth.items())]

    async def over_asgi():
        return [
            await HttpCommunicator(application, "GET", path, headers=headers).get_response(10)
            for path in paths
        ]

    for path, answer in zip(paths, asyncio.run(over_asgi()), strict=True):
        assert answer["status"] == 200, path
        assert answer["body"] == Client().get(path, headers=auth).content, path
