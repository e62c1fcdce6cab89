"""Key material never leaves encrypted storage except to sign a request: not in any API answer
(JSON or browsable), page, admin page, error page, decision or log line, even when the venue
refuses the signature."""

import logging

import pytest
from django.test import Client, override_settings
from django.urls import include, path
from rest_framework.test import APIClient

from accounts.models import UserSecret
from accounts.selectors import decrypted_secret
from exchanges.double import ExchangeDouble, Fault, Scenario
from exchanges.ratelimit import BookCache, LocalRateLimiter
from exchanges.testing import TEST_POLYMARKET_PRIVATE_KEY, kalshi_key_pair
from simulator.engine import decide_intent
from simulator.engine.validation import ExchangeValidator
from simulator.services import start_run
from tests.accounts.factories import UserFactory
from tests.simulator.factories import (
    KALSHI_KEY_ID,
    NOW,
    ExecutionIntentFactory,
    MarketPairFactory,
    give_keys,
    set_thresholds,
)
from tests.simulator.test_engine_validation import NO_TOKEN, TICKER, YES_TOKEN

pytestmark = pytest.mark.django_db


def boom(request):
    """A view that fails while it holds a decrypted secret (what a bug in signing code would do)."""
    secret = decrypted_secret(user_id=request.user.pk, exchange="kalshi")
    raise RuntimeError(f"signing failed for a {len(secret)}-field secret")


urlpatterns = [path("boom", boom), path("", include("config.urls"))]


def needles() -> dict[str, str]:
    """Distinctive pieces of every secret the user saved."""
    private_pem, _ = kalshi_key_pair()
    body = private_pem.strip().splitlines()[1:-1]
    hex_key = TEST_POLYMARKET_PRIVATE_KEY.removeprefix("0x")
    return {
        "kalshi api key id": KALSHI_KEY_ID,
        "kalshi pem, first line": body[0],
        "kalshi pem, middle line": body[len(body) // 2],
        "polymarket private key": hex_key,
        "polymarket private key, upper case": hex_key.upper(),
    }


def assert_clean(where: str, text: str) -> None:
    for name, needle in needles().items():
        assert needle not in text, f"{name} found in {where}"


@pytest.fixture
def double():
    _, public_pem = kalshi_key_pair()
    with ExchangeDouble(Scenario.demo()) as running:
        running.state.register_kalshi_key(KALSHI_KEY_ID, public_pem, balance_cents=50_000)
        yield running


@pytest.fixture
def scene(double, user):
    set_thresholds(user)
    give_keys(user, kalshi_host=double.kalshi_host, polymarket_host=double.polymarket_host)
    pair = MarketPairFactory(
        opportunity_key="FED-DEC", kalshi_ticker=TICKER, poly_yes_token=YES_TOKEN, poly_no_token=NO_TOKEN
    )
    run, _ = start_run(user=user, starting_usd="1000", now=NOW)
    return run, pair


def test_no_surface_and_no_log_line_carries_key_material(scene, double, user, caplog):
    run, pair = scene
    stored = decrypted_secret(user_id=user.pk, exchange="kalshi")
    assert needles()["kalshi pem, middle line"] in stored["extra"]["private_key"]  # the needles are real
    caplog.set_level(logging.DEBUG)
    validator = ExchangeValidator(timeout_s=1, cache=BookCache(ttl_s=0), rate_limiter=LocalRateLimiter())
    traded = decide_intent(
        run_id=run.pk,
        intent_id=ExecutionIntentFactory(user=user, pair=pair).pk,
        now=NOW,
        validator=validator.validate,
    )
    assert traded.outcome == "traded", traded.reason
    for venue in ("kalshi", "polymarket"):
        double.add_fault(Fault(venue=venue, kind="bad_signature", times=1))
    refused_intent = ExecutionIntentFactory(user=user, pair=pair)
    refused = decide_intent(run_id=run.pk, intent_id=refused_intent.pk, now=NOW, validator=validator.validate)
    assert refused.outcome == "skipped" and refused.reason_code == "exchange_validation", refused.reason

    api = APIClient()
    api.force_authenticate(user)
    texts = {}
    for url in (
        "/simulator/status",
        "/simulator/runs",
        f"/simulator/runs/{run.pk}/trades",
        f"/simulator/trades/{traded.trade.pk}",
        f"/execution/intents/{refused_intent.pk}",
        "/api/profile",
        "/api/secrets",
        "/api/secrets/kalshi",
        "/api/secrets/polymarket",
    ):
        for accept in ("application/json", "text/html"):  # the browsable API renders forms too
            answer = api.get(url, HTTP_ACCEPT=accept)
            assert answer.status_code == 200, (url, accept)
            texts[f"{url} as {accept}"] = answer.content.decode()

    browser = Client(raise_request_exception=False)
    browser.force_login(user)
    for url in ("/simulator/", "/accounts/profile/"):
        texts[url] = browser.get(url).content.decode()

    admin = Client()
    admin.force_login(UserFactory(is_staff=True, is_superuser=True))
    secret = UserSecret.objects.get(user=user, exchange="kalshi")
    for url in (
        "/admin/accounts/usersecret/",
        f"/admin/accounts/usersecret/{secret.pk}/change/",
        "/admin/accounts/userprofile/",
        f"/admin/auth/user/{user.pk}/change/",
        f"/admin/simulator/simulatorrun/{run.pk}/change/",
    ):
        answer = admin.get(url)
        assert answer.status_code == 200, url
        texts[url] = answer.content.decode()

    with override_settings(DEBUG=False, ROOT_URLCONF=__name__):
        not_found = browser.get("/no/such/page")
        server_error = browser.get("/boom")
    assert (not_found.status_code, server_error.status_code) == (404, 500)
    texts["404 page"] = not_found.content.decode()
    texts["500 page"] = server_error.content.decode()

    for where, text in texts.items():
        assert_clean(where, text)
    assert "signing failed" in caplog.text  # the 500 was logged, with its traceback
    assert_clean("the log", caplog.text)
    assert_clean("the log (structured fields)", repr([record.__dict__ for record in caplog.records]))
