"""A schemathesis pass over the simulator's OpenAPI operations: generated paths, query strings
and bodies (valid and not) must never give a 500, and every documented answer must match its
schema (so the schema and the presenters cannot drift apart)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import override_settings
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from simulator.backtests import create_backtest
from simulator.models import Backtest
from tests.simulator.surface_fixtures import make_decision, make_intent, make_run, make_span, make_trade


def _schema() -> schemathesis.BaseSchema:
    document = json.loads(
        OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True))
    )
    loaded = schemathesis.openapi.from_dict(document)
    loaded.app = get_wsgi_application()
    return loaded.include(path_regex=r"^/(simulator|execution)/")


schema = _schema()
pytestmark = [pytest.mark.slow, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def keep_test_connection():
    """Call the WSGI app the way Django's test client does: the request signals must not close
    the connection that holds the test's transaction."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def unthrottled(settings):
    """The fuzzer explores inputs, not the rate limits (tests/hardening/test_api_throttles.py):
    past the write limit every example would meet the same 429."""
    rates = dict.fromkeys(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"])
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}


@pytest.fixture(autouse=True)
def recordings_dir(tmp_path, settings):
    """Uploads the fuzzer sends land in a folder of the test's own."""
    settings.RECORDINGS_DIR = tmp_path / "recordings"


@pytest.fixture
def token(user, other_user) -> str:
    """A user with rows behind every id the fuzzer is likely to try (1..), and a neighbour."""
    now = timezone.now()
    run = make_run(user)
    make_run(user, status="stopped")
    intent = make_intent(user)
    make_trade(run, intent=intent, executed_at=now - timedelta(minutes=2))
    make_trade(run, executed_at=now + timedelta(seconds=30))
    make_decision(run, span=make_span(started_at=now - timedelta(minutes=5)), reason_code="balance")
    make_trade(make_run(other_user))
    done = create_backtest(user=user, recording="bundled/demo_recording.jsonl.gz", seed=1)
    Backtest.objects.filter(pk=done.pk).update(status=Backtest.DONE, results=[])
    create_backtest(user=user, recording="bundled/demo_recording.jsonl.gz", seed=2)  # queued
    return Token.objects.create(user=user).key


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@override_settings(ALLOWED_HOSTS=["localhost", "testserver"])
def test_api_never_fails_and_matches_its_schema(case, token):
    case.call_and_validate(
        headers={"Authorization": f"Token {token}"},
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
    )
