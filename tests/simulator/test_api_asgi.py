"""The API through Django's ASGI handler (as uvicorn serves it) answers the same bytes as through
the WSGI test client: views that let go of their objects after rendering still render all."""

import asyncio
from datetime import timedelta

import pytest
from django.test import AsyncClient, Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from tests.simulator.surface_fixtures import make_run, make_trade

pytestmark = pytest.mark.django_db(transaction=True)  # the ASGI request runs in its own thread


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

    async def over_asgi():
        client = AsyncClient()
        return [await client.get(path, headers=auth) for path in paths]

    for path, answer in zip(paths, asyncio.run(over_asgi()), strict=True):
        assert answer.status_code == 200, path
        assert answer.content == Client().get(path, headers=auth).content, path
