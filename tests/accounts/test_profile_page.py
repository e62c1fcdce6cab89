import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.models import UserProfile, UserSecret
from accounts.selectors import decrypted_secret

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_profile_page_needs_login():
    answer = Client().get("/accounts/profile/")
    assert answer.status_code == 302
    assert answer["Location"].startswith("/accounts/login/")


def test_login_page_logs_a_user_in(user):
    client = Client()
    answer = client.post("/accounts/login/", {"username": user.username, "password": "correct horse battery"})
    assert answer.status_code == 302
    assert client.get("/accounts/profile/").status_code == 200


def test_page_shows_missing_thresholds_and_saves_them(browser, user):
    page = browser.get("/accounts/profile/").content.decode()
    assert "Not set: min_net_edge_cents, max_leg_usd, daily_cap_usd" in page
    answer = browser.post(
        "/accounts/profile/", {"min_net_edge_cents": "2", "max_leg_usd": "50", "daily_cap_usd": "500"}
    )
    assert answer.status_code == 302
    assert UserProfile.objects.get(user=user).missing_thresholds() == []


def test_page_shows_threshold_errors_in_place(browser, user):
    answer = browser.post(
        "/accounts/profile/", {"min_net_edge_cents": "-4", "max_leg_usd": "", "daily_cap_usd": ""}
    )
    assert answer.status_code == 400
    assert (
        "min_net_edge_cents: must be greater than or equal to 0.01 (accepted: a decimal number of cents from 0.01 to 99"
        in answer.content.decode()
    )
    assert UserProfile.objects.get(user=user).min_net_edge_cents is None


def test_page_saves_a_secret_then_shows_only_that_it_is_set(browser, user, rsa_private_pem):
    answer = browser.post(
        "/accounts/profile/secrets/kalshi/replace",
        {"kalshi-api_key": "page-key-id-4410", "kalshi-private_key": rsa_private_pem},
    )
    assert answer.status_code == 302
    assert decrypted_secret(user_id=user.pk, exchange="kalshi")["api_key"] == "page-key-id-4410"
    page = browser.get("/accounts/profile/").content.decode()
    assert "page-key-id-4410" not in page
    assert rsa_private_pem.splitlines()[1] not in page
    assert 'Kalshi credentials:\n    <span class="ok">set</span>' in page


def test_page_names_the_bad_field_of_a_secret(browser, user):
    answer = browser.post(
        "/accounts/profile/secrets/polymarket/replace", {"polymarket-private_key": "0xnothex"}
    )
    assert answer.status_code == 400
    assert "extra.private_key must be a 32-byte hex key" in answer.content.decode()
    assert not UserSecret.objects.exists()


def test_page_deletes_a_secret(browser, user, polymarket_private_key):
    browser.post(
        "/accounts/profile/secrets/polymarket/replace", {"polymarket-private_key": polymarket_private_key}
    )
    assert UserSecret.objects.filter(user=user).count() == 1
    browser.post("/accounts/profile/secrets/polymarket/delete")
    assert not UserSecret.objects.filter(user=user).exists()


def test_admin_shows_secrets_masked(user, rsa_private_pem):
    from accounts.services import set_secret

    secret = set_secret(
        user=user, exchange="kalshi", api_key="admin-key-id-9931", extra={"private_key": rsa_private_pem}
    )
    admin_user = get_user_model().objects.create_superuser("boss", "boss@example.test", "pw-boss-123")
    client = Client()
    client.force_login(admin_user)
    for url in ("/admin/accounts/usersecret/", f"/admin/accounts/usersecret/{secret.pk}/change/"):
        answer = client.get(url)
        assert answer.status_code == 200
        html = answer.content.decode()
        assert "set (hidden)" in html
        assert "admin-key-id-9931" not in html
        assert rsa_private_pem.splitlines()[1] not in html
