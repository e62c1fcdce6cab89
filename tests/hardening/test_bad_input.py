"""Abusive request bodies get a 4xx with a message, never a 500, and are bounded in size;
garbage websocket frames get an error frame and the socket keeps its live feed."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

from simulator.engine.broadcast import broadcast_trade
from simulator.models import SimulatorRun
from tests.simulator.surface_fixtures import make_run, make_trade
from tests.simulator.test_websocket import communicator, session_cookie

pytestmark = pytest.mark.django_db
WRITES = [
    ("post", "/simulator/start"),
    ("post", "/simulator/stop"),
    ("put", "/api/profile"),
    ("put", "/api/secrets/kalshi"),
]


@pytest.fixture
def api(user) -> APIClient:
    """Answers as a server would (an unhandled exception becomes its 500 page, not a raise)."""
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(user)
    return client


def oversized_json() -> bytes:
    """A valid JSON object of about twice DATA_UPLOAD_MAX_MEMORY_SIZE (5 MB at the default)."""
    filler = "x" * (2 * settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    return json.dumps({"starting_usd": "100", "label": "big", "notes": filler}).encode()


def message_of(answer) -> str:
    return answer.content.decode(errors="replace")


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_an_oversized_json_body_is_refused_with_a_message(api, user, method, path):
    body = oversized_json()
    answer = getattr(api, method)(path, body, content_type="application/json")
    assert answer.status_code in (400, 413), (answer.status_code, message_of(answer)[:300])
    assert not SimulatorRun.objects.filter(user=user).exists()


def test_an_oversized_json_body_is_answered_with_json_naming_the_limit(api):
    answer = api.post("/simulator/start", oversized_json(), content_type="application/json")
    assert answer.status_code == 413
    assert str(settings.DATA_UPLOAD_MAX_MEMORY_SIZE) in " ".join(answer.json()["detail"])


@pytest.mark.parametrize(("method", "path"), WRITES)
@pytest.mark.parametrize(
    "body",
    [b'{"starting_usd": ', b"\xff\xfe\x00garbage", b"[1, 2, 3]", b'"a string"', b"null", b"1e999999"],
    ids=["truncated", "not-utf8", "a-list", "a-string", "null", "huge-number"],
)
def test_malformed_json_is_a_400_with_a_message(api, method, path, body):
    answer = getattr(api, method)(path, body, content_type="application/json")
    assert answer.status_code == 400, (answer.status_code, message_of(answer)[:300])
    assert answer.json(), "a 400 says what is wrong"


@pytest.mark.parametrize(("method", "path"), WRITES)
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", b"starting_usd=100"),
        ("application/xml", b"<run><starting_usd>100</starting_usd></run>"),
        ("application/octet-stream", b"\x00\x01\x02"),
    ],
    ids=["text", "xml", "octets"],
)
def test_a_wrong_content_type_is_refused_not_a_500(api, method, path, content_type, body):
    answer = getattr(api, method)(path, body, content_type=content_type)
    assert answer.status_code in (400, 415), (answer.status_code, message_of(answer)[:300])
    assert answer.json()


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_a_broken_multipart_body_is_not_a_500(api, method, path):
    answer = getattr(api, method)(path, b"--x\r\nbroken", content_type="multipart/form-data; boundary=x")
    assert answer.status_code < 500, message_of(answer)[:300]


DEEP_JSON = b'{"opportunity_keys": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"


def test_deeply_nested_json_is_a_400(api):
    answer = api.post("/simulator/start", DEEP_JSON, content_type="application/json")
    assert answer.status_code == 400, (answer.status_code, message_of(answer)[:300])


def test_an_oversized_form_post_to_the_page_is_refused(user):
    client = Client(raise_request_exception=False)
    client.force_login(user)
    answer = client.post(
        "/accounts/profile/secrets/kalshi/replace",
        {"api_key": "k", "private_key": "x" * (2 * settings.DATA_UPLOAD_MAX_MEMORY_SIZE)},
    )
    assert answer.status_code in (400, 413)


@pytest.mark.django_db(transaction=True)
def test_garbage_frames_get_error_frames_and_the_feed_goes_on(user, settings):
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 0  # the consumer's thread connection must close
    cookie = session_cookie(user)
    trade = make_trade(make_run(user))
    huge = "[" + "0," * 600_000 + "0]"  # ~1.2 MB of valid JSON that is not a ping

    async def scenario():
        socket_ = communicator(cookie)
        assert (await socket_.connect())[0]
        for frame in (
            {"bytes_data": b"\xff\xfe\xfd"},  # binary, not UTF-8
            {"bytes_data": b"\x00" * 1_000_000},
            {"text_data": huge},
            {"text_data": "\ud800 lone surrogate"},
            {"text_data": '{"type": "ping"'},
        ):
            await socket_.send_to(**frame)
            answer = await socket_.receive_json_from(timeout=5)
            assert answer["event"] == "error", answer
        await socket_.send_json_to({"type": "ping"})
        assert await socket_.receive_json_from(timeout=5) == {"event": "pong"}
        assert await sync_to_async(broadcast_trade)(trade)
        assert (await socket_.receive_json_from(timeout=5))["data"]["id"] == trade.pk
        await socket_.disconnect()

    asyncio.run(scenario())


@pytest.mark.django_db(transaction=True)
def test_a_deeply_nested_frame_gets_an_error_frame_and_the_socket_stays(user, settings):
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 0
    cookie = session_cookie(user)

    async def scenario():
        socket_ = communicator(cookie)
        assert (await socket_.connect())[0]
        try:
            await socket_.send_to(text_data="[" * 100_000)
            assert (await socket_.receive_json_from(timeout=2))["event"] == "error"
            await socket_.send_json_to({"type": "ping"})
            assert await socket_.receive_json_from(timeout=5) == {"event": "pong"}
        finally:
            await socket_.disconnect()

    asyncio.run(scenario())
