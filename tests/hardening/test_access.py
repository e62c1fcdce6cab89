"""Who may use what: every endpoint and the socket refuse a missing or inactive user, another
user's ids are 404s, and session-authenticated writes need the CSRF token."""

import asyncio

import pytest
from django.conf import settings
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import UserSecret
from simulator.consumers import CLOSE_UNAUTHENTICATED
from simulator.models import SimulatorRun
from tests.simulator.surface_fixtures import make_intent, make_run, make_trade
from tests.simulator.test_websocket import communicator, session_cookie

pytestmark = pytest.mark.django_db

READS = [
    "/simulator/status",
    "/simulator/runs",
    "/simulator/runs/{run}",
    "/simulator/runs/{run}/trades",
    "/simulator/runs/{run}/equity",
    "/simulator/trades/{trade}",
    "/simulator/active",
    "/simulator/report",
    "/simulator/pairs",
    "/execution/intents/{intent}",
    "/api/profile",
    "/api/secrets",
    "/api/secrets/kalshi",
]
WRITES = [
    ("post", "/simulator/start", {"starting_usd": "100"}),
    ("post", "/simulator/stop", {"run_id": "{run}"}),
    ("put", "/api/profile", {"min_net_edge_cents": "2"}),
    ("put", "/api/secrets/kalshi", {"api_key": "k", "extra": {"private_key_path": "/nonexistent"}}),
    ("delete", "/api/secrets/kalshi", None),
]
PAGES = ["/simulator/", "/accounts/profile/"]
OWNED = [path for path in READS if "{" in path]


@pytest.fixture
def owned(user):
    """One row of each kind that has its own URL, owned by `user`."""
    run = make_run(user)
    intent = make_intent(user)
    trade = make_trade(run, intent=intent)
    return {"run": run.pk, "trade": trade.pk, "intent": intent.pk}


def fill(path: str, ids: dict) -> str:
    return path.format(**ids)


def body_of(body, ids):
    return {k: fill(v, ids) if isinstance(v, str) else v for k, v in body.items()} if body else None


def assert_refused(answer, what: str) -> None:
    assert answer.status_code in (401, 403), (what, answer.status_code, answer.content[:200])
    assert answer.json()["detail"], what


def test_no_user_is_refused_everywhere(owned):
    anonymous = APIClient()
    for path in READS:
        assert_refused(anonymous.get(fill(path, owned)), path)
    for method, path, body in WRITES:
        assert_refused(getattr(anonymous, method)(path, body_of(body, owned), format="json"), path)
    for page in PAGES:
        answer = Client().get(page)
        assert answer.status_code == 302 and answer["Location"].startswith("/accounts/login/"), page
    assert SimulatorRun.objects.get(pk=owned["run"]).status == SimulatorRun.RUNNING


def test_another_users_ids_are_404s(owned, user, other_user):
    intruder = APIClient()
    intruder.force_authenticate(other_user)
    for path in OWNED:
        answer = intruder.get(fill(path, owned))
        assert answer.status_code == 404, (path, answer.status_code)
    answer = intruder.post("/simulator/stop", {"run_id": owned["run"]}, format="json")
    assert answer.status_code == 404
    assert SimulatorRun.objects.get(pk=owned["run"]).status == SimulatorRun.RUNNING
    # Their lists do not show it either.
    assert intruder.get("/simulator/runs").json()["count"] == 0
    assert intruder.get("/simulator/status").json()["recent_trades"] == []


def test_an_inactive_user_is_refused_by_token_session_and_page(owned, user, settings):
    # A deactivated user's token counts as a failed token: let every path be asked before the
    # failed-token limit (tests/hardening/test_api_throttles.py) would answer 429 instead.
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "failed_token": "100/minute"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    token = Token.objects.create(user=user).key
    cookie = session_cookie(user)
    user.is_active = False
    user.save()

    by_token = APIClient(HTTP_AUTHORIZATION=f"Token {token}")
    by_session = APIClient()
    by_session.cookies[settings.SESSION_COOKIE_NAME] = cookie
    for client in (by_token, by_session):
        for path in READS:
            assert_refused(client.get(fill(path, owned)), path)
        for method, path, body in WRITES:
            assert_refused(getattr(client, method)(path, body_of(body, owned), format="json"), path)
    page_client = Client()
    page_client.cookies[settings.SESSION_COOKIE_NAME] = cookie
    for page in PAGES:
        assert page_client.get(page).status_code == 302, page
    assert SimulatorRun.objects.filter(user=user).count() == 1


@pytest.mark.django_db(transaction=True)
def test_an_inactive_users_socket_is_closed_with_4401(user, settings):
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 0  # the consumer's thread connection must close
    cookie = session_cookie(user)
    user.is_active = False
    user.save()

    async def scenario():
        socket_ = communicator(cookie)
        await socket_.connect()
        closed = await socket_.receive_output(timeout=5)
        assert (closed["type"], closed["code"]) == ("websocket.close", CLOSE_UNAUTHENTICATED)

    asyncio.run(scenario())


def csrf_client(user) -> tuple[APIClient, str]:
    """A browser-like session: logged in, CSRF enforced, the token read from a page it loaded."""
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get("/simulator/").status_code == 200
    return client, client.cookies[settings.CSRF_COOKIE_NAME].value


def test_session_writes_without_the_csrf_token_are_refused(owned, user):
    client, _ = csrf_client(user)
    for method, path, body in WRITES:
        answer = getattr(client, method)(path, body_of(body, owned), format="json")
        assert answer.status_code == 403, (path, answer.status_code)
        assert "CSRF" in answer.json()["detail"], path
    answer = client.post("/accounts/profile/secrets/kalshi/delete")
    assert answer.status_code == 403
    assert SimulatorRun.objects.filter(user=user).count() == 1
    assert SimulatorRun.objects.get(pk=owned["run"]).status == SimulatorRun.RUNNING


def test_session_writes_with_the_csrf_token_go_through(user, rsa_private_pem):
    client, token = csrf_client(user)
    started = client.post("/simulator/start", {"starting_usd": "100"}, format="json", HTTP_X_CSRFTOKEN=token)
    assert started.status_code == 201, started.content
    body = {"api_key": "k1", "extra": {"private_key": rsa_private_pem}}
    saved = client.put("/api/secrets/kalshi", body, format="json", HTTP_X_CSRFTOKEN=token)
    assert saved.status_code == 200
    assert UserSecret.objects.filter(user=user, exchange="kalshi").exists()


def test_token_clients_need_no_csrf_token(user):
    token = Token.objects.create(user=user).key
    client = APIClient(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Token {token}")
    assert client.post("/simulator/start", {"starting_usd": "100"}, format="json").status_code == 201
