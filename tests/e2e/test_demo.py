"""The README's first command, exercised: trades arrive through the API, Ctrl-C stops it all.

Every long-running command is started as a background job (SIGINT ignored, as `nohup cmd &`, CI
runners and job schedulers start it) and must still stop on SIGINT and on SIGTERM: its last
line printed, exit code 0, its ports free, no process of its session left behind.
"""

import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from exchanges.double import ExchangeDouble, Scenario
from tests.e2e.browser import SHOTS, assert_no_csp_violations, chromium_page, log_in
from tests.e2e.demo_process import (
    AS_BACKGROUND_JOB,
    ROOT,
    CommandProcess,
    DemoProcess,
    embedded_env,
    free_port,
    listening,
)

STOP_SIGNALS = [signal.SIGINT, signal.SIGTERM]


@pytest.mark.slow
def test_demo_serves_trades_read_from_the_feeds_within_a_minute_and_stops_on_ctrl_c(tmp_path):
    demo = DemoProcess(tmp_path, speed=10.0)  # the demo's own default pace
    try:
        demo.wait_for_login()
        client = demo.logged_in_client()
        trades, deadline = [], time.monotonic() + 60
        while not trades and time.monotonic() < deadline:
            status = client.get("/simulator/status")
            assert status.status_code == 200, status.text[:500]
            # A trade whose orders have arrived (they do within a second of the decision).
            trades = [t for t in status.json()["recent_trades"] if t["arrival_outcome"]]
            time.sleep(1)
        assert trades, f"no trade within a minute of the URL appearing:\n{demo.log()[-3000:]}"
        # Ingest read those books from the double's two websocket feeds, as live ingest does.
        streams = client.get("/healthz").json()["checks"]["streams"]["streams"]
        assert {(s["venue"], s["state"]) for s in streams} == {("kalshi", "live"), ("polymarket", "live")}
        trade = trades[0]
        for leg in trade["legs"]:
            # Filled against the book the order met at arrival: never better, never past the limit.
            available = {level["price"]: float(level["size"]) for level in leg["arrival_available"]}
            best_ask = min((float(level["price"]) for level in leg["arrival_book"]), default=1.0)
            for fill in leg["fills"]:
                assert best_ask <= float(fill["price"]) <= float(leg["limit_price"])
                assert float(fill["size"]) <= available[fill["price"]]
        assert [c["name"] for c in trade["checks"]] == [
            "has_orders",
            "net_edge",
            "instrument_ids",
            "exchange_keys",
            "exchange_validation",
            "balance",
            "daily_cap",
        ]
    finally:
        returncode = demo.stop(signal.SIGINT)
    assert "demo stopped" in demo.log(), demo.log()[-2000:]
    assert returncode == 0, demo.log()[-2000:]


ARRIVED_OUTCOMES = ("full", "partial", "legged")


def _shows_every_outcome(trades: list[dict]) -> bool:
    """Among these arrived trades: a full, a partial and a legged one, a slippage and an unwind."""
    outcomes = {t["arrival_outcome"] for t in trades}
    return (
        all(outcome in outcomes for outcome in ARRIVED_OUTCOMES)
        and any(t["slippage_cents"] is not None for t in trades)
        and any(float(t["unwind_cost_usd"]) > 0 for t in trades)
    )


@pytest.mark.slow
def test_demo_shows_full_partial_and_legged_trades_slippage_and_unwinds_in_the_api_and_on_the_page(tmp_path):
    """The demo's double moves books between decisions and arrivals (exchanges/double/moves.py):
    within its first minutes (here at 4x its pace) the report counts full, partial and legged
    trades, slippage and unwind cost, and the page shows the same figures and trades."""
    from playwright.sync_api import expect

    demo = DemoProcess(tmp_path, speed=40.0)
    try:
        demo.wait_for_login()
        client = demo.logged_in_client()
        # Bounded: 150 s at 40x is the recording's first 100 minutes. The second trade (~18 s in)
        # legs by design; full and partial trades come within the first minute as a rule.
        deadline, recent = time.monotonic() + 150, []
        while not _shows_every_outcome(recent) and time.monotonic() < deadline:
            time.sleep(1)
            recent = [
                t for t in client.get("/simulator/status").json()["recent_trades"] if t["arrival_outcome"]
            ]
        assert _shows_every_outcome(recent), (
            f"outcomes so far {[t['arrival_outcome'] for t in recent]}:\n{demo.log()[-3000:]}"
        )
        # The run stops: the figures stand still for the page once a decision under way at the
        # stop has written its trade and every order has arrived (the page and the API agree).
        run_id = client.get("/simulator/status").json()["runs"][0]["id"]
        client.post("/simulator/stop", json={"run_id": run_id}).raise_for_status()

        with chromium_page() as page:
            log_in(page, demo)
            arrival = page.locator("#report-arrival")
            shown = arrival.locator("[data-field=outcomes]")
            settle_by = time.monotonic() + 30
            while True:
                report = client.get("/simulator/report?hours=24&max_gap_s=120&min_edge_cents=1").json()
                outcomes = report["arrival_outcomes"]
                expected = ", ".join(f"{outcome} {n}" for outcome, n in outcomes.items())
                page.reload()
                expect(shown).to_contain_text("missed")
                if not report["trades_in_flight"] and shown.inner_text().endswith(expected):
                    break
                assert time.monotonic() < settle_by, f"{shown.inner_text()!r} vs the API's {expected!r}"
                time.sleep(0.5)
            assert all(outcomes[outcome] >= 1 for outcome in ARRIVED_OUTCOMES), outcomes
            assert float(report["unwind_cost_usd"]) > 0 and report["legging_incidents"] >= 1
            slippage = report["slippage_cents"]
            assert slippage["p50"] is not None and slippage["p95"] is not None and slippage["trades"] >= 1
            trades = client.get("/simulator/status").json()["recent_trades"]
            newest = {
                outcome: next(t for t in trades if t["arrival_outcome"] == outcome)
                for outcome in ARRIVED_OUTCOMES
            }
            expect(arrival.locator("[data-field=slippage]")).to_contain_text(
                f"{slippage['p50']} / {slippage['p95']} ¢"
            )
            legging = arrival.locator("[data-field=legging]")
            expect(legging).to_contain_text(f"{report['legging_incidents']}, $")
            assert float(re.sub(r"[^\d.]", "", legging.inner_text().split("$")[-1])) == float(
                report["unwind_cost_usd"]
            )
            for outcome, trade in newest.items():
                row = page.locator(f"#trades tbody tr[data-trade-id='{trade['id']}']")
                expect(row.locator("[data-outcome]")).to_have_text(outcome)
            page.locator("#report-card").screenshot(path=SHOTS / "13-demo-report.png")

            legged = newest["legged"]
            page.locator(f"#trades tbody tr[data-trade-id='{legged['id']}']").click()
            modal = page.locator("#trade-modal")
            expect(modal.locator("h3 [data-outcome]")).to_have_text("legged")
            for leg in legged["legs"]:
                section = modal.locator(f"[data-leg={leg['venue']}]")
                if leg["unwind"]:  # the leg that filled, sold back at its bids
                    expect(section.locator("[data-timeline] li")).to_have_text(
                        [
                            re.compile(r"decided"),
                            re.compile(r"sent"),
                            re.compile(r"arrived"),
                            re.compile(r"unwind sent"),
                            re.compile(r"unwind arrived"),
                        ]
                    )
                    expect(section.locator("[data-unwind]")).to_contain_text(
                        f"sell {leg['unwind']['size']} back"
                    )
                else:  # the leg that met a book past its limit, or no asks
                    expect(section).to_contain_text(leg["detail"])
            page.screenshot(path=SHOTS / "14-demo-legged-trade.png", full_page=True)
            assert_no_csp_violations(page)
    finally:
        demo.stop(signal.SIGINT)


def test_a_background_job_starts_with_sigint_ignored():
    """The premise of the tests below: started this way, Python gets no KeyboardInterrupt."""
    shown = subprocess.run(
        [*AS_BACKGROUND_JOB, "-c", "import signal; print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.strip() == "True"


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", STOP_SIGNALS, ids=lambda s: s.name)
def test_demo_started_in_the_background_stops_on_the_signal_and_frees_its_ports(tmp_path, stop_signal):
    demo = DemoProcess(tmp_path)
    demo.wait_for_login()
    demo.wait_for_port(demo.double_port)
    returncode = demo.stop(stop_signal)
    assert demo.log().rstrip().endswith("demo stopped: daphne, ingest and the exchange double are down")
    assert returncode == 0, demo.log()[-2000:]
    assert not listening(demo.port) and not listening(demo.double_port)
    assert demo.session_is_empty()


@pytest.fixture(scope="module")
def migrated_sqlite(tmp_path_factory):
    """A migrated SQLite file with the bundled pairs, copied by each test that needs one."""
    path = tmp_path_factory.mktemp("db") / "template.sqlite3"
    for args in (["migrate", "--noinput", "-v0"], ["pairs_import", "ingest/fixtures/demo_pairs.yaml"]):
        subprocess.run(
            [*AS_BACKGROUND_JOB, "manage.py", *args],
            cwd=ROOT,
            env=embedded_env(path),
            check=True,
            timeout=300,
        )
    return path


@pytest.fixture
def double():
    with ExchangeDouble(Scenario.demo()) as running:
        yield running


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", STOP_SIGNALS, ids=lambda s: s.name)
def test_exchange_double_started_in_the_background_stops_on_the_signal(tmp_path, stop_signal):
    port = free_port()
    command = CommandProcess(tmp_path, ["exchange_double", "--port", str(port)])
    command.wait_for_line(re.compile(r"to stop\."))
    command.wait_for_port(port)
    returncode = command.stop(stop_signal)
    assert command.log().rstrip().endswith("Exchange double stopped.")
    assert returncode == 0, command.log()[-2000:]
    assert not listening(port)
    assert command.session_is_empty()


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", STOP_SIGNALS, ids=lambda s: s.name)
def test_ingest_replay_started_in_the_background_stops_on_the_signal(tmp_path, migrated_sqlite, stop_signal):
    sqlite_path = shutil.copy(migrated_sqlite, tmp_path / "ingest.sqlite3")
    command = CommandProcess(
        tmp_path,
        ["ingest_run", "--replay", "ingest/data/demo_recording.jsonl.gz", "--speed", "1"],
        sqlite_path=sqlite_path,
    )  # an hour of recording at its own pace: still running when the signal comes
    command.wait_for_line(re.compile(r"ingest replay .* pairs"))
    returncode = command.stop(stop_signal)
    assert re.search(r"interrupted: \d+ updates", command.log()), command.log()[-2000:]
    assert returncode == 0, command.log()[-2000:]
    assert command.session_is_empty()


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", STOP_SIGNALS, ids=lambda s: s.name)
def test_record_started_in_the_background_stops_on_the_signal(tmp_path, migrated_sqlite, double, stop_signal):
    sqlite_path = shutil.copy(migrated_sqlite, tmp_path / "record.sqlite3")
    out = tmp_path / "recorded.jsonl.gz"
    command = CommandProcess(
        tmp_path,
        ["record", "--out", str(out), "--double-url", double.base_url, "--poll-interval-s", "60"],
        sqlite_path=sqlite_path,
    )
    command.wait_for_line(re.compile(r"what=recording .* rounds=[1-9]"))
    returncode = command.stop(stop_signal)
    assert re.search(rf"wrote {re.escape(str(out))}: \d+ updates, 3 pairs \(interrupted\)", command.log())
    assert returncode == 0, command.log()[-2000:]
    assert out.is_file()
    assert command.session_is_empty()


def _manage_py_lifted_sigint_ignore(pid: int) -> bool:
    """The background-job wrapper has exec'd manage.py and manage.py no longer ignores SIGINT."""
    if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1:2] != [b"manage.py"]:
        return False
    status = Path(f"/proc/{pid}/status").read_text()
    ignored = int(re.search(r"^SigIgn:\s*([0-9a-f]+)", status, re.M).group(1), 16)
    return not ignored & (1 << (signal.SIGINT - 1))


@pytest.mark.slow
def test_a_command_interrupted_while_it_starts_stops_all_the_same(tmp_path):
    """Ctrl-C in the seconds before the command has its own handlers (Django still starting)."""
    port = free_port()
    command = CommandProcess(tmp_path, ["exchange_double", "--port", str(port)])
    deadline = time.monotonic() + 10
    while not _manage_py_lifted_sigint_ignore(command.process.pid) and time.monotonic() < deadline:
        time.sleep(0.005)  # manage.py starts with the inherited SIG_IGN and lifts it first thing
    assert _manage_py_lifted_sigint_ignore(command.process.pid), "manage.py kept SIGINT ignored"
    command.process.send_signal(signal.SIGINT)
    returncode = command.process.wait(timeout=30)
    # 130: stopped by manage.py's Ctrl-C, seconds before the command's own handlers would exist;
    # 0: the Ctrl-C was dropped by a finalizer, sent again, and met the command's own handlers
    assert returncode in (130, 0), command.log()[-2000:]
    assert "Traceback" not in command.log()
    assert not listening(port)
    assert command.session_is_empty()
