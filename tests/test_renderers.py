"""The API's orjson renderer writes what DRF's JSONRenderer wrote: same bytes for the contract's
Decimal strings, datetimes, error details and lazy text, and the same indented output for the
browsable API."""

import datetime
from decimal import Decimal

import pytest
from django.utils.translation import gettext_lazy
from rest_framework.exceptions import ErrorDetail
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from config.renderers import ORJSONRenderer
from tests.simulator.surface_fixtures import make_run

PAYLOAD = {
    "starting_usd": "1000.0000",
    "raw_decimal": Decimal("12.3400"),
    "at": datetime.datetime(2026, 3, 2, 12, 0, 0, 123456, tzinfo=datetime.UTC),
    "day": datetime.date(2026, 3, 2),
    "detail": ErrorDetail("run 7 not found", code="not_found"),
    "lazy": gettext_lazy("This field is required."),
    "nested": [{"ok": True, "n": 3, "none": None, "ratio": 0.25}],
    1: "integer key",
    "separators": "a\u2028b\u2029c é",
}


@pytest.mark.parametrize("media_type", ["application/json", "application/json; indent=4"])
def test_orjson_renderer_writes_drf_bytes(media_type):
    assert ORJSONRenderer().render(PAYLOAD, media_type, {}) == JSONRenderer().render(PAYLOAD, media_type, {})


@pytest.mark.django_db
def test_run_money_renders_as_the_same_decimal_strings(user):
    run = make_run(user, starting_usd="1234.5")
    client = APIClient()
    client.force_authenticate(user)
    answer = client.get(f"/simulator/runs/{run.pk}")
    assert answer["Content-Type"] == "application/json"
    body = answer.json()
    assert (body["starting_usd"], body["balance_usd"], body["max_leg_usd"]) == (
        "1234.5000",
        "1234.5000",
        "100.00",
    )
    assert b'"starting_usd":"1234.5000"' in answer.content
