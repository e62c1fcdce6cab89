"""The API answers floods with 429 + Retry-After: made-up tokens per address, writes and the
report per user. Reads of a logged-in user are never counted, so polling goes on."""

import secrets
import socket

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.simulator.surface_fixtures import make_run

pytestmark = pytest.mark.django_db


def with_rates(settings, **rates) -> None:
    """The limits are settings (API_RATE_* in the environment); a test sets the ones it needs."""
    current = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**current, **rates}}


def assert_throttled(answer, problem: str) -> None:
    assert answer.status_code == 429, (answer.status_code, answer.content[:200])
    assert int(answer["Retry-After"]) > 0
    assert problem in answer.json()["detail"]


def test_fifty_made_up_tokens_are_cut_off_with_429_and_retry_after(settings, user):
    limit = int(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["failed_token"].split("/")[0])
    guesser = APIClient(REMOTE_ADDR="10.1.0.1")
    answers = [
        guesser.get("/simulator/status", HTTP_AUTHORIZATION=f"Token {secrets.token_hex(20)}")
        for _ in range(50)
    ]

    assert {a.status_code for a in answers[:limit]} <= {401, 403}
    for answer in answers[limit:]:
        assert_throttled(answer, "Too many failed token authentications")
    # During the wait a right token from that address is refused the same way ...
    token = Token.objects.create(user=user).key
    assert_throttled(
        guesser.get("/simulator/status", HTTP_AUTHORIZATION=f"Token {token}"), "Too many failed token"
    )
    # ... and from any other address it works.
    elsewhere = APIClient(REMOTE_ADDR="10.1.0.2", HTTP_AUTHORIZATION=f"Token {token}")
    assert elsewhere.get("/simulator/status").status_code == 200


def test_malformed_token_headers_count_as_failures(settings):
    with_rates(settings, failed_token="3/minute")
    guesser = APIClient(REMOTE_ADDR="10.1.1.1")
    for header in ("Token", "Token a b", "Token \u00e9t\u00e9"):
        assert guesser.get("/simulator/status", HTTP_AUTHORIZATION=header).status_code in (401, 403)
    assert_throttled(guesser.get("/simulator/status", HTTP_AUTHORIZATION="Token x"), "failed token")


def test_starting_runs_past_the_write_limit_is_429_for_that_user_only(settings, api, other_user):
    with_rates(settings, write="3/minute")
    for _ in range(3):
        assert api.post("/simulator/start", {"starting_usd": "100"}, format="json").status_code == 201

    assert_throttled(api.post("/simulator/start", {"starting_usd": "100"}, format="json"), "throttled")
    assert_throttled(api.post("/simulator/stop", {}, format="json"), "throttled")
    assert_throttled(api.put("/api/profile", {"min_net_edge_cents": "2"}, format="json"), "throttled")
    assert_throttled(api.delete("/api/secrets/kalshi"), "throttled")
    neighbour = APIClient()
    neighbour.force_authenticate(other_user)
    assert neighbour.post("/simulator/start", {"starting_usd": "100"}, format="json").status_code == 201


def test_the_report_past_its_limit_is_429(settings, api):
    with_rates(settings, report="2/minute")
    assert [api.get("/simulator/report").status_code for _ in range(2)] == [200, 200]
    assert_throttled(api.get("/simulator/report"), "throttled")


def test_a_user_polling_status_and_trades_is_never_throttled(settings, user):
    # Even with writes and the report at their tightest, reads are not counted.
    with_rates(settings, write="1/minute", report="1/minute", failed_token="1/minute")
    run = make_run(user)
    token = Token.objects.create(user=user).key
    poller = APIClient(HTTP_AUTHORIZATION=f"Token {token}")
    for _ in range(150):
        assert poller.get("/simulator/status").status_code == 200
        assert poller.get(f"/simulator/runs/{run.pk}/trades").status_code == 200


def test_the_open_schema_is_throttled_for_anonymous_clients(settings):
    with_rates(settings, anon="2/minute")
    anonymous = APIClient(REMOTE_ADDR="10.1.2.1")
    assert [anonymous.get("/api/schema/").status_code for _ in range(2)] == [200, 200]
    assert_throttled(anonymous.get("/api/schema/?format=json"), "throttled")


def test_with_the_cache_unreachable_requests_go_through(settings, user):
    """A Redis outage must not take the API down: uncountable limits let requests through."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port}/0",
        }
    }
    token = Token.objects.create(user=user).key
    client = APIClient(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/simulator/status").status_code == 200
    assert client.post("/simulator/start", {"starting_usd": "100"}, format="json").status_code == 201
    bad = APIClient(HTTP_AUTHORIZATION="Token made-up")
    assert bad.get("/simulator/status").status_code in (401, 403)


def test_the_schema_documents_the_throttled_answer_on_every_operation(user):
    client = APIClient()
    client.force_login(user)
    schema = client.get("/api/schema/", {"format": "json"}).json()
    operations = [
        (path, method, operation)
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    ]
    assert ("/simulator/start", "post") in {(path, method) for path, method, _ in operations}
    for path, method, operation in operations:
        throttled = operation["responses"].get("429")
        assert throttled is not None, f"{method.upper()} {path} does not document 429"
        assert "Retry-After" in throttled["headers"]
    assert "enum" in str(schema["components"]["schemas"]["RunStatusEnum"])  # the default hook still ran
