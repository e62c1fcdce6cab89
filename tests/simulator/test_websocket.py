"""The live feed: /ws/simulator/ through the project's ASGI stack and the configured channel
layer (channels-redis under ./dev test), and through real servers on loopback (daphne; uvicorn
with two workers, as the image runs it)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as websocket_connect
from websockets.typing import Origin

from config.asgi import application
from simulator import presenters
from simulator.consumers import CLOSE_UNAUTHENTICATED
from simulator.engine import arrive_in_order, broadcast, decide_intent, in_flight_steps
from simulator.engine.broadcast import broadcast_decision, broadcast_run, broadcast_trade
from simulator.models import SimulatorRun, SimulatorTrade
from tests.simulator.conftest import ArrivalBooks
from tests.simulator.factories import NOW, ExecutionIntentFactory
from tests.simulator.surface_fixtures import make_run, make_trade
from tests.simulator.test_arrival import UNCHANGED, start

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def close_thread_connections(monkeypatch):
    """The consumer reads the session in a worker thread; with persistent connections that
    thread's connection would outlive the test and block the test database's teardown."""
    monkeypatch.setitem(settings.DATABASES["default"], "CONN_MAX_AGE", 0)


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def _our_host() -> str:
    """A host the origin validator accepts (it read ALLOWED_HOSTS when config.asgi was imported)."""
    hosts = [
        host
        for host in settings.ALLOWED_HOSTS
        if host not in ("*", "testserver") and not host.startswith(".")
    ]
    return hosts[0] if hosts else "localhost"


def communicator(cookie: str | None = None, origin: bytes | None = None) -> WebsocketCommunicator:
    host = _our_host().encode()
    headers = [(b"origin", origin or b"http://" + host), (b"host", host)]
    if cookie:
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    return WebsocketCommunicator(application, "/ws/simulator/", headers=headers)


def test_anonymous_socket_is_closed_with_4401():
    async def scenario():
        socket_ = communicator()
        await socket_.connect()
        closed = await socket_.receive_output(timeout=5)
        assert (closed["type"], closed["code"]) == ("websocket.close", CLOSE_UNAUTHENTICATED)

    asyncio.run(scenario())


def test_socket_from_another_site_is_refused(user):
    cookie = session_cookie(user)

    async def scenario():
        socket_ = communicator(cookie, origin=b"https://evil.example")
        connected, _ = await socket_.connect()
        assert not connected

    asyncio.run(scenario())


def test_user_receives_own_trades_and_runs_but_not_another_users(user, other_user):
    cookie = session_cookie(user)
    run = make_run(user)
    mine = make_trade(run)
    theirs = make_trade(make_run(other_user))

    async def scenario():
        socket_ = communicator(cookie)
        connected, _ = await socket_.connect()
        assert connected
        assert await sync_to_async(broadcast_trade)(theirs)
        assert await sync_to_async(broadcast_trade)(mine)
        frame = await socket_.receive_json_from(timeout=5)
        assert frame["event"] == "simulator:trade"
        assert frame["data"]["id"] == mine.pk
        assert frame["data"]["status"] in {"queued", "executed", "settled"}
        assert frame["data"]["legs"][0]["fills"]
        assert await sync_to_async(broadcast_run)(run)
        frame = await socket_.receive_json_from(timeout=5)
        assert (frame["event"], frame["data"]["id"]) == ("simulator:run", run.pk)
        assert await socket_.receive_nothing(timeout=0.2)
        await socket_.disconnect()

    asyncio.run(scenario())


def test_a_decision_sends_its_trade_then_its_run_as_two_frames(user):
    cookie = session_cookie(user)
    run = make_run(user)
    trade = make_trade(run)

    async def scenario():
        socket_ = communicator(cookie)
        assert (await socket_.connect())[0]
        assert await sync_to_async(broadcast_decision)(trade, run)
        first = await socket_.receive_json_from(timeout=5)
        second = await socket_.receive_json_from(timeout=5)
        assert (first["event"], first["data"]["id"]) == ("simulator:trade", trade.pk)
        assert (second["event"], second["data"]["id"]) == ("simulator:run", run.pk)
        await socket_.disconnect()

    asyncio.run(scenario())


def test_an_orders_last_arrival_sends_the_completed_trade_and_its_run_as_stored(trading_user, book_validator):
    """The step that completes a trade reads back from its write what it did not read itself: the
    frames show the whole trade and run, as the API would."""
    cookie = session_cookie(trading_user)
    run = start(trading_user)
    intent = ExecutionIntentFactory(user=trading_user)
    decision = decide_intent(run_id=run.pk, intent_id=intent.pk, now=NOW, validator=book_validator)
    steps = in_flight_steps(decision)
    broadcast.flush()

    async def scenario():
        socket_ = communicator(cookie)
        assert (await socket_.connect())[0]
        await sync_to_async(arrive_in_order)(steps, ArrivalBooks(**UNCHANGED))
        trade_frame = await socket_.receive_json_from(timeout=5)
        run_frame = await socket_.receive_json_from(timeout=5)
        await socket_.disconnect()
        return trade_frame, run_frame

    trade_frame, run_frame = asyncio.run(scenario())
    stored_trade = presenters.trade_json(SimulatorTrade.objects.get(decision=decision))
    stored_run = presenters.run_json(SimulatorRun.objects.get(pk=run.pk))
    assert trade_frame["event"] == "simulator:trade" and run_frame["event"] == "simulator:run"
    assert trade_frame["data"]["arrival_outcome"] == "full"
    for key in ("id", "opportunity_key", "direction", "checks", "validation", "decided_at", "settled_at"):
        assert trade_frame["data"][key] == stored_trade[key], key
    for key in ("matched_size", "cost_usd", "expected_pnl_usd", "reserved_usd", "settlement_delay_s"):
        assert Decimal(trade_frame["data"][key]) == Decimal(stored_trade[key]), key
    assert [leg["fills"] for leg in trade_frame["data"]["legs"]] == [
        leg["fills"] for leg in stored_trade["legs"]
    ]
    for key in ("id", "label", "status", "started_at", "ends_at", "trade_count", "execution"):
        assert run_frame["data"][key] == stored_run[key], key
    for key in ("balance_usd", "reserved_usd", "expected_pnl_usd", "starting_usd"):
        assert Decimal(run_frame["data"][key]) == Decimal(stored_run[key]), key


needs_redis_layer = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="the outbox is in front of a network layer (channels-redis) only"
)


@needs_redis_layer
def test_events_past_the_outbox_limit_are_dropped_with_a_warning_and_later_ones_go(user, monkeypatch, caplog):
    """A websocket fan-out that cannot keep up never holds the engine: past the limit an event
    is dropped (its row is in the database), and the feed resumes once the outbox drains."""
    cookie = session_cookie(user)
    run = make_run(user)
    trade = make_trade(run)

    async def scenario():
        socket_ = communicator(cookie)
        assert (await socket_.connect())[0]
        monkeypatch.setattr(broadcast, "MAX_PENDING_EVENTS", 0)
        assert not await sync_to_async(broadcast_trade)(trade)
        assert await socket_.receive_nothing(timeout=0.3)
        monkeypatch.setattr(broadcast, "MAX_PENDING_EVENTS", 10)
        assert await sync_to_async(broadcast_run)(run)
        frame = await socket_.receive_json_from(timeout=5)
        assert (frame["event"], frame["data"]["id"]) == ("simulator:run", run.pk)
        await socket_.disconnect()

    asyncio.run(scenario())
    assert "event=broadcast_dropped" in caplog.text


@needs_redis_layer
def test_many_events_sent_at_once_arrive_in_order(user):
    """Events waiting together go to the user as one message per round: none lost, none reordered."""
    cookie = session_cookie(user)
    run = make_run(user)
    trades = [make_trade(run) for _ in range(30)]

    async def scenario():
        socket_ = communicator(cookie)
        assert (await socket_.connect())[0]

        def send_all():
            for trade in trades:
                assert broadcast_trade(trade)
            assert broadcast.flush(timeout_s=5)

        await sync_to_async(send_all)()
        received = [(await socket_.receive_json_from(timeout=5))["data"]["id"] for _ in trades]
        assert received == [trade.pk for trade in trades]
        assert await socket_.receive_nothing(timeout=0.2)
        await socket_.disconnect()

    asyncio.run(scenario())


@needs_redis_layer
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")
def test_a_forked_worker_sends_through_its_own_loop(user):
    """A Celery prefork child inherits the parent's outbox but not its loop thread: its events
    still go out (through a loop of its own), and reach the user's socket."""
    cookie = session_cookie(user)
    trade = make_trade(make_run(user))
    assert broadcast_trade(trade) and broadcast.flush(timeout_s=5)  # the parent's loop exists now

    async def scenario():
        socket_ = communicator(cookie)
        assert (await socket_.connect())[0]
        pid = os.fork()
        if pid == 0:  # the child: no database, no pytest; its exit status is the verdict
            sent = broadcast_trade(trade) and broadcast.flush(timeout_s=5)
            os._exit(0 if sent else 1)
        _, status = await asyncio.get_running_loop().run_in_executor(None, os.waitpid, pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        frame = await socket_.receive_json_from(timeout=5)
        assert (frame["event"], frame["data"]["id"]) == ("simulator:trade", trade.pk)
        await socket_.disconnect()

    asyncio.run(scenario())


def test_ping_gets_pong_and_garbage_keeps_the_socket_open(user):
    cookie = session_cookie(user)
    trade = make_trade(make_run(user))

    async def scenario():
        socket_ = communicator(cookie)
        assert (await socket_.connect())[0]
        await socket_.send_to(text_data="not json {")
        assert (await socket_.receive_json_from(timeout=5))["event"] == "error"
        await socket_.send_json_to([1, 2, 3])
        assert (await socket_.receive_json_from(timeout=5))["event"] == "error"
        await socket_.send_to(bytes_data=b"\x00\x01")
        assert (await socket_.receive_json_from(timeout=5))["event"] == "error"
        await socket_.send_json_to({"type": "ping"})
        assert await socket_.receive_json_from(timeout=5) == {"event": "pong"}
        assert await sync_to_async(broadcast_trade)(trade)
        assert (await socket_.receive_json_from(timeout=5))["data"]["id"] == trade.pk
        await socket_.disconnect()

    asyncio.run(scenario())


# --- end to end: a real server process (daphne, or uvicorn as the image runs it) ------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


SERVERS = {
    "daphne": lambda port: ["daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
    # The image's web tier: several worker processes, a socket held by any one of them.
    "uvicorn-2-workers": lambda port: [
        "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--workers", "2", "config.asgi:application",
    ],
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.postgres_only
@pytest.mark.parametrize("server_name", SERVERS)
def test_trade_reaches_a_browser_socket_through_the_server(user, server_name):
    if not os.environ.get("REDIS_URL") or settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        pytest.skip("needs PostgreSQL and Redis (./dev test)")
    cookie = session_cookie(user)
    trade = make_trade(make_run(user))
    port = _free_port()
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DB_CONN_MAX_AGE": "0",  # no connection left open to block the test database's teardown
    }
    server = subprocess.Popen(
        [sys.executable, "-m", *SERVERS[server_name](port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        with websocket_connect(
            f"ws://127.0.0.1:{port}/ws/simulator/",
            origin=Origin(f"http://127.0.0.1:{port}"),
            additional_headers={"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}"},
            open_timeout=30,  # uvicorn's workers may still be loading the application
        ) as conn:
            conn.send('{"type": "ping"}')
            assert json.loads(conn.recv(timeout=10)) == {"event": "pong"}
            assert broadcast_trade(trade)
            text = conn.recv(timeout=10)
            assert isinstance(text, str), "a text frame"
            frame = json.loads(text)
            assert (frame["event"], frame["data"]["id"]) == ("simulator:trade", trade.pk)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=30) as page:
            assert page.status == 200  # plain HTTP through the same server
        # Logged out, the browser sees the close code that sends the page to the login form.
        with websocket_connect(
            f"ws://127.0.0.1:{port}/ws/simulator/", origin=Origin(f"http://127.0.0.1:{port}"), open_timeout=10
        ) as anonymous:
            with pytest.raises(ConnectionClosed) as closed:
                anonymous.recv(timeout=10)
            assert closed.value.rcvd.code == CLOSE_UNAUTHENTICATED
    finally:
        server.terminate()
        server.wait(timeout=10)
