"""Guessing passwords is cut short: failed logins lock out the username and the client address
(django-axes), the lockout page says for how long, the admin sees and lifts it."""

import logging

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.core.management import call_command
from django.test import Client

from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery"  # the factories' password
LIMIT = settings.AXES_FAILURE_LIMIT


def log_in(client: Client, username: str, password: str, address: str = "10.0.0.1", **headers):
    return client.post(
        "/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address, **headers
    )


def assert_logged_in(client: Client) -> None:
    assert client.get("/accounts/profile/").status_code == 200


def assert_locked_out(answer) -> None:
    assert answer.status_code == 429, answer.status_code
    page = answer.content.decode()
    assert "Login locked" in page
    minutes = settings.AXES_COOLOFF_TIME.total_seconds() / 60
    assert f"Logins are refused for {minutes:.0f} minutes" in page
    assert answer["Retry-After"] == str(int(settings.AXES_COOLOFF_TIME.total_seconds()))


def test_thirty_wrong_passwords_lock_the_username_out_even_for_the_right_one_from_anywhere(user):
    client = Client()
    # Each guess from its own address: only the username's count can lock.
    answers = [log_in(client, user.username, f"guess-{n}", address=f"10.0.1.{n}") for n in range(30)]

    assert [a.status_code for a in answers[: LIMIT - 1]] == [200] * (LIMIT - 1)
    assert "didn't match" in answers[0].content.decode()
    for answer in answers[LIMIT - 1 :]:
        assert_locked_out(answer)
    right = log_in(client, user.username, PASSWORD, address="10.0.2.1")
    assert_locked_out(right)
    assert client.get("/accounts/profile/").status_code == 302  # not logged in


def test_one_address_trying_many_usernames_is_locked_out_for_all_of_them(user):
    client = Client()
    for n in range(LIMIT):
        log_in(client, f"nobody{n}", "guess", address="10.0.3.1")

    assert_locked_out(log_in(client, user.username, PASSWORD, address="10.0.3.1"))
    elsewhere = Client()
    assert log_in(elsewhere, user.username, PASSWORD, address="10.0.3.2").status_code == 302
    assert_logged_in(elsewhere)


def test_a_forwarded_for_header_does_not_dodge_the_address_lock_without_a_trusted_proxy(user):
    client = Client()
    for n in range(LIMIT):
        log_in(client, f"nobody{n}", "guess", address="10.0.4.1", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    answer = log_in(client, user.username, PASSWORD, address="10.0.4.1", HTTP_X_FORWARDED_FOR="192.0.2.99")
    assert_locked_out(answer)


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_one_locked(user, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    client = Client()
    for n in range(LIMIT):
        log_in(client, f"nobody{n}", "guess", address="10.0.5.1", HTTP_X_FORWARDED_FOR="192.0.2.7")

    proxy_says = {"address": "10.0.5.1"}
    assert_locked_out(log_in(client, user.username, PASSWORD, **proxy_says, HTTP_X_FORWARDED_FOR="192.0.2.7"))
    neighbour = Client()
    answer = log_in(neighbour, user.username, PASSWORD, **proxy_says, HTTP_X_FORWARDED_FOR="192.0.2.8")
    assert answer.status_code == 302


def test_the_admin_login_is_locked_out_too(user):
    client = Client()
    for n in range(LIMIT - 1):
        client.post("/admin/login/", {"username": user.username, "password": f"guess-{n}"})
    assert_locked_out(client.post("/admin/login/", {"username": user.username, "password": "guess"}))


def test_a_lockout_shows_in_the_admin_and_the_admins_reset_lets_the_user_back_in(user):
    client = Client()
    for n in range(LIMIT):
        log_in(client, user.username, f"guess-{n}")
    assert_locked_out(log_in(client, user.username, PASSWORD))

    admin = Client()
    admin.force_login(UserFactory(is_staff=True, is_superuser=True))
    listing = admin.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200
    assert user.username in listing.content.decode() and "10.0.0.1" in listing.content.decode()

    attempts = list(AccessAttempt.objects.filter(username=user.username).values_list("pk", flat=True))
    answer = admin.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": attempts, "post": "yes"},
    )
    assert answer.status_code == 302

    assert log_in(client, user.username, PASSWORD).status_code == 302
    assert_logged_in(client)


def test_the_reset_command_lets_a_locked_out_user_back_in(user):
    client = Client()
    for n in range(LIMIT):
        log_in(client, user.username, f"guess-{n}")
    assert_locked_out(log_in(client, user.username, PASSWORD))

    call_command("axes_reset_username", user.username)

    assert log_in(client, user.username, PASSWORD).status_code == 302
    assert_logged_in(client)


def test_failed_logins_are_logged_and_recorded_without_the_password(user, caplog):
    caplog.set_level(logging.INFO)
    client = Client()
    for n in range(LIMIT):
        log_in(client, user.username, f"hunter2-secret-{n}")

    assert f"username='{user.username}'" in caplog.text
    assert "Locking out" in caplog.text
    assert "hunter2-secret" not in caplog.text
    recorded = AccessAttempt.objects.get(username=user.username)
    assert recorded.failures_since_start == LIMIT
    assert "hunter2-secret" not in recorded.post_data
