import logging

import pytest
from django.db import connection
from rest_framework.test import APIClient

from accounts.models import UserSecret
from accounts.selectors import decrypted_secret

pytestmark = pytest.mark.django_db

POLY_KEY_DIGITS = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"


@pytest.fixture
def kalshi_body(rsa_private_pem):
    return {"api_key": "kalshi-key-id-7781", "extra": {"private_key": rsa_private_pem, "use_demo": True}}


def pem_body_line(pem: str) -> str:
    return pem.strip().splitlines()[1]


def test_secret_is_encrypted_at_rest(api, user, kalshi_body, rsa_private_pem):
    assert api.put("/api/secrets/kalshi", kalshi_body, format="json").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key, extra FROM user_secrets WHERE user_id = %s", [user.pk])
        raw_api_key, raw_extra = cursor.fetchone()
    assert "kalshi-key-id-7781" not in raw_api_key
    assert pem_body_line(rsa_private_pem) not in raw_extra
    assert "use_demo" not in raw_extra
    assert (
        decrypted_secret(user_id=user.pk, exchange="kalshi")["extra"]["private_key"]
        == rsa_private_pem.strip()
    )


def test_secret_api_answers_set_or_not_set_and_never_the_secret(api, kalshi_body, rsa_private_pem):
    before = api.get("/api/secrets/kalshi").json()
    assert before["set"] is False
    put = api.put("/api/secrets/kalshi", kalshi_body, format="json")
    listing = api.get("/api/secrets")
    for answer in (put, api.get("/api/secrets/kalshi"), listing):
        text = answer.content.decode()
        assert "kalshi-key-id-7781" not in text
        assert pem_body_line(rsa_private_pem) not in text
    assert put.json()["set"] is True
    assert {row["exchange"]: row["set"] for row in listing.json()} == {"kalshi": True, "polymarket": False}


def test_replacing_a_secret_replaces_it_whole(api, user, kalshi_body, polymarket_private_key):
    api.put("/api/secrets/polymarket", {"extra": {"private_key": polymarket_private_key}}, format="json")
    funder = "0x" + "ab" * 20
    body = {"extra": {"private_key": "0x" + "11" * 32, "funder": funder}}
    assert api.put("/api/secrets/polymarket", body, format="json").status_code == 200
    secret = decrypted_secret(user_id=user.pk, exchange="polymarket")
    assert secret["extra"] == {"private_key": "0x" + "11" * 32, "funder": funder}
    assert UserSecret.objects.filter(user=user).count() == 1


def test_delete_removes_the_secret_and_a_second_delete_is_404(api, user, kalshi_body):
    api.put("/api/secrets/kalshi", kalshi_body, format="json")
    assert api.delete("/api/secrets/kalshi").status_code == 204
    assert not UserSecret.objects.filter(user=user).exists()
    assert api.delete("/api/secrets/kalshi").status_code == 404


def test_unknown_exchange_is_404_naming_the_choices(api):
    answer = api.put("/api/secrets/binance", {"api_key": "x"}, format="json")
    assert answer.status_code == 404
    assert "kalshi, polymarket" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("exchange", "body", "field", "words"),
    [
        ("kalshi", {"extra": {"private_key": "PEM"}}, "api_key", "required"),
        ("kalshi", {"api_key": "k"}, "extra.private_key", "required"),
        ("kalshi", {"api_key": "k", "extra": {"private_key": "not a pem"}}, "extra.private_key", "PEM"),
        (
            "kalshi",
            {"api_key": "k", "extra": {"private_key_path": "/nonexistent/key.pem"}},
            "extra.private_key_path",
            "readable file",
        ),
        (
            "kalshi",
            {"api_key": "k", "extra": {"private_key_path": "/etc/hostname"}},
            "extra.private_key_path",
            "PEM",
        ),
        (
            "kalshi",
            {"api_key": "k", "extra": {"private_key": "@pem", "use_demo": "yes"}},
            "extra.use_demo",
            "true or false",
        ),
        (
            "kalshi",
            {"api_key": "k", "extra": {"private_key": "@pem", "host": "ftp://x"}},
            "extra.host",
            "http(s) URL",
        ),
        (
            "kalshi",
            {"api_key": "k", "extra": {"private_key": "@pem", "hots": "x"}},
            "extra.hots",
            "not a kalshi setting",
        ),
        ("kalshi", {"api_key": "k" * 201, "extra": {"private_key": "@pem"}}, "api_key", "200"),
        ("polymarket", {"extra": {}}, "extra.private_key", "required"),
        ("polymarket", {"extra": {"private_key": "0x1234"}}, "extra.private_key", "32-byte hex"),
        ("polymarket", {"extra": {"private_key": "zz" * 32}}, "extra.private_key", "32-byte hex"),
        ("polymarket", {"extra": {"private_key": "@hex", "funder": "0x12"}}, "extra.funder", "address"),
        ("polymarket", {"extra": {"private_key": "@hex", "host": "not a url"}}, "extra.host", "http(s) URL"),
        ("polymarket", {"extra": "a string"}, "extra", "dictionary"),
    ],
)
def test_each_validation_rule_names_the_field_and_saves_nothing(
    api, user, rsa_private_pem, exchange, body, field, words
):
    extra = body.get("extra")
    if isinstance(extra, dict):
        fill = {"@pem": rsa_private_pem, "@hex": POLY_KEY_DIGITS}
        body = {**body, "extra": {k: fill.get(v, v) if isinstance(v, str) else v for k, v in extra.items()}}
    answer = api.put(f"/api/secrets/{exchange}", body, format="json")
    assert answer.status_code == 400, answer.content
    errors = answer.json()
    assert field in errors, errors
    assert words in " ".join(errors[field])
    assert not UserSecret.objects.filter(user=user).exists()


def test_a_bad_replacement_keeps_the_old_secret(api, user, kalshi_body, rsa_private_pem):
    api.put("/api/secrets/kalshi", kalshi_body, format="json")
    answer = api.put(
        "/api/secrets/kalshi", {"api_key": "new", "extra": {"private_key": "junk"}}, format="json"
    )
    assert answer.status_code == 400
    assert decrypted_secret(user_id=user.pk, exchange="kalshi")["api_key"] == "kalshi-key-id-7781"


def test_a_kalshi_key_given_by_path_is_accepted(api, user, tmp_path, rsa_private_pem):
    key_file = tmp_path / "kalshi.pem"
    key_file.write_text(rsa_private_pem)
    body = {
        "api_key": "k1",
        "extra": {"private_key_path": str(key_file), "host": "http://127.0.0.1:9/trade-api/v2"},
    }
    assert api.put("/api/secrets/kalshi", body, format="json").status_code == 200


def test_a_user_cannot_see_or_delete_another_users_secret(api, user, other_user, kalshi_body):
    api.put("/api/secrets/kalshi", kalshi_body, format="json")
    other = APIClient()
    other.force_authenticate(other_user)
    assert other.get("/api/secrets/kalshi").json()["set"] is False
    assert other.delete("/api/secrets/kalshi").status_code == 404
    assert UserSecret.objects.filter(user=user, exchange="kalshi").exists()


def test_secrets_never_reach_the_logs(api, kalshi_body, rsa_private_pem, caplog):
    caplog.set_level(logging.DEBUG)
    api.put("/api/secrets/kalshi", kalshi_body, format="json")
    api.put(
        "/api/secrets/kalshi",
        {"api_key": "kalshi-key-id-7781", "extra": {"private_key": "bad"}},
        format="json",
    )
    api.get("/api/secrets")
    logged = caplog.text
    assert "kalshi-key-id-7781" not in logged
    assert pem_body_line(rsa_private_pem) not in logged
