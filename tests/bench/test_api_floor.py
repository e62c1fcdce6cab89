"""The floor bench_api measures the API against (bench/floor.py) answers the very bytes the real
endpoints answer, for the same user and rows, by token and by session: otherwise its ratio
would compare two different pieces of work."""

from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.utils import timezone
from rest_framework.authtoken.models import Token

from tests.simulator.surface_fixtures import make_run, make_trade

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("bench_urls")]

FLOOR = "/bench-floor"


@pytest.fixture
def bench_urls():
    with override_settings(ROOT_URLCONF="bench.urls"):
        yield


@pytest.fixture
def runs(user, other_user):
    """Two running runs, the first with 53 trades (a page of 50 and a second page); another
    user's run and trade that neither answer may show."""
    first, second = make_run(user, label="first"), make_run(user, label="second")
    base = timezone.now() - timedelta(hours=1)
    for n in range(53):
        make_trade(first, executed_at=base + timedelta(seconds=n))
    make_trade(second, executed_at=base)
    make_trade(make_run(other_user), executed_at=base)
    return first, second


def _both(client: Client, path: str, **headers) -> tuple[bytes, bytes]:
    real, floor = client.get(path, headers=headers), client.get(FLOOR + path, headers=headers)
    assert (real.status_code, floor.status_code) == (200, 200), path
    return real.content, floor.content


@pytest.mark.parametrize("query", ["", "?page=2", "?page=2&format_hint=x"])
def test_floor_answers_the_real_trade_pages_bytes_by_token(user, runs, query):
    key = Token.objects.create(user=user).key
    real, floor = _both(Client(), f"/simulator/runs/{runs[0].pk}/trades{query}", authorization=f"Token {key}")
    assert real == floor
    assert b'"count":53' in real


def test_floor_answers_the_real_status_bytes_by_token_and_by_session(user, runs):
    key = Token.objects.create(user=user).key
    by_token = _both(Client(), "/simulator/status", authorization=f"Token {key}")
    session = Client()
    session.force_login(user)
    by_session = _both(session, "/simulator/status")
    assert by_token[0] == by_token[1] == by_session[0] == by_session[1]
    assert by_token[0].count(b'"label":') == 2  # both running runs, not the other user's


def test_floor_is_not_in_the_product_urls(user, runs):
    with override_settings(ROOT_URLCONF="config.urls"):
        client = Client()
        client.force_login(user)
        assert client.get(FLOOR + "/simulator/status").status_code == 404
