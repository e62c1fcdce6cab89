from decimal import Decimal

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import UserProfile

pytestmark = pytest.mark.django_db


def test_every_new_user_has_an_empty_profile(user):
    profile = UserProfile.objects.get(user=user)
    assert profile.missing_thresholds() == ["min_net_edge_cents", "max_leg_usd", "daily_cap_usd"]


def test_user_sets_thresholds_and_reads_them_back_as_decimal_strings(api):
    answer = api.put(
        "/api/profile",
        {"min_net_edge_cents": "2.5", "max_leg_usd": "100", "daily_cap_usd": "1000.00"},
        format="json",
    )
    assert answer.status_code == 200, answer.content
    again = api.get("/api/profile").json()
    assert again["min_net_edge_cents"] == "2.50"
    assert again["max_leg_usd"] == "100.00"
    assert again["daily_cap_usd"] == "1000.00"


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("min_net_edge_cents", "0", "greater than or equal to 0.01"),
        ("min_net_edge_cents", "-1", "greater than or equal to 0.01"),
        ("min_net_edge_cents", "150", "less than or equal to 99"),
        ("max_leg_usd", "abc", "decimal"),
        ("max_leg_usd", "NaN", "finite"),
        ("daily_cap_usd", "99999999999", "less than or equal to"),
        ("daily_cap_usd", "0.001", "decimal places"),
    ],
)
def test_bad_threshold_is_refused_naming_the_field_and_nothing_is_saved(api, user, field, value, words):
    api.put("/api/profile", {"min_net_edge_cents": "3"}, format="json")
    answer = api.put("/api/profile", {"min_net_edge_cents": "4", field: value}, format="json")
    assert answer.status_code == 400
    body = answer.json()
    assert field in body
    assert words in " ".join(body[field])
    assert UserProfile.objects.get(user=user).min_net_edge_cents == Decimal("3.00")


def test_unknown_profile_field_is_refused(api):
    answer = api.put("/api/profile", {"max_leg": "5"}, format="json")
    assert answer.status_code == 400
    assert answer.json() == {"max_leg": ["is not a profile field"]}


def test_profile_api_needs_a_user():
    client = APIClient()
    assert client.get("/api/profile").status_code in (401, 403)
    assert client.put("/api/profile", {}, format="json").status_code in (401, 403)


def test_a_script_authenticates_with_the_token_from_drf_create_token(user):
    call_command("drf_create_token", user.username)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get(user=user).key}")
    assert client.get("/api/profile").status_code == 200


def test_each_user_sees_and_changes_only_their_own_profile(api, user, other_user):
    api.put("/api/profile", {"max_leg_usd": "10"}, format="json")
    other = APIClient()
    other.force_authenticate(other_user)
    assert other.get("/api/profile").json()["max_leg_usd"] is None
    other.put("/api/profile", {"max_leg_usd": "20"}, format="json")
    assert UserProfile.objects.get(user=user).max_leg_usd == Decimal("10.00")
