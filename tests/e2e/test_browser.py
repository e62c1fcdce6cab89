"""The /simulator/ page in Debian's Chromium (headless, driven by Playwright), against the demo.
Every test also fails on a Content-Security-Policy violation in the console (tests/e2e/browser.py).
"""

import gzip
import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.browser import ROOT, SHOTS, assert_no_csp_violations, chromium_page, log_in
from tests.e2e.demo_process import DemoProcess, embedded_env

pytestmark = pytest.mark.slow
ADMIN = "boss"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("demo")
    process = DemoProcess(data_dir, speed=40.0)
    process.wait_for_login()
    process.sqlite_path = data_dir / "demo.sqlite3"
    process.admin_password = make_admin(process.sqlite_path)
    yield process
    process.stop()


# A trader of their own in the demo's database, with one legged trade whose Kalshi leg was unwound
# (tests/simulator/surface_fixtures.py): the modal's timeline and books have known contents.
SEED_LEGGED_TRADE = """
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.utils import timezone
from tests.simulator.surface_fixtures import make_legged_trade, make_run
user = get_user_model().objects.create_user({username!r}, password={password!r})
# Started an hour ago: a run past its end time would end at the demo's next span start.
run = make_run(user, label="legged run", reserved_usd="12.50", started_at=timezone.now() - timedelta(hours=1))
print(make_legged_trade(run, timezone.now()).pk)
"""


def seed_legged_trade(sqlite_path: Path, username: str, password: str) -> int:
    made = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            SEED_LEGGED_TRADE.format(username=username, password=password),
        ],
        cwd=ROOT,
        env=embedded_env(sqlite_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    return int(made.stdout.split()[-1])


# A trader of their own in the demo's database with one trade on each of two pairs, and the pairs'
# markets in an exchange double of the script's own: open, then closed, then determined, the
# ingest's lifecycle follower asking at each step as its pass does. The venues agree on the first
# pair (Kalshi YES and Polymarket's YES token win) and not on the second (Kalshi NO, Polymarket
# YES): each trade bought YES on Kalshi and NO on Polymarket, 10 contracts for $9.55.
SEED_RESOLVED_PAIRS = """
import json
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.utils import timezone
from exchanges.double import ExchangeDouble, KalshiMarket, PolymarketBook, Scenario
from ingest.lifecycle import LifecycleFollower
from ingest.sources import LiveHosts
from tests.simulator.surface_fixtures import make_intent, make_pair, make_run, make_trade
user = get_user_model().objects.create_user({username!r}, password={password!r})
now = timezone.now()
run = make_run(user, label="resolved run", started_at=now - timedelta(hours=1))
trades = {{}}
for digit, key in (("7", "E2E-AGREE"), ("8", "E2E-DISAGREE")):
    pair = make_pair(key, kalshi_ticker="KX" + key, poly_yes_token=digit * 30 + "1",
                     poly_no_token=digit * 30 + "2", poly_condition_id="0x" + digit * 64)
    intent = make_intent(user, key, signal_at=now - timedelta(minutes=20))
    trades[key] = (pair, make_trade(run, intent=intent, executed_at=now - timedelta(minutes=int(digit))))
with ExchangeDouble(Scenario()) as double:
    for pair, _ in trades.values():
        double.state.add_kalshi_market(KalshiMarket(ticker=pair.kalshi_ticker))
        for token, outcome in ((pair.poly_yes_token, "Yes"), (pair.poly_no_token, "No")):
            double.state.add_polymarket_book(
                PolymarketBook(token_id=token, market=pair.poly_condition_id, outcome=outcome))
    follower = LifecycleFollower(hosts=LiveHosts.of_double(double))
    assert follower.poll().paid == []  # open
    for pair, _ in trades.values():
        double.state.set_kalshi_status(pair.kalshi_ticker, "closed")
    assert follower.poll().paid == []  # closed: nothing to pay yet
    for key, kalshi_result in (("E2E-AGREE", "yes"), ("E2E-DISAGREE", "no")):
        pair, _ = trades[key]
        double.state.set_kalshi_status(pair.kalshi_ticker, "determined", kalshi_result)
        double.state.set_polymarket_resolved(pair.poly_yes_token)
    paid = sorted(p["opportunity_key"] for p in follower.poll().paid)
    assert paid == ["E2E-AGREE", "E2E-DISAGREE"], paid
print(json.dumps({{"run_id": run.pk, **{{key: trade.pk for key, (_, trade) in trades.items()}}}}))
"""


def seed_resolved_pairs(sqlite_path: Path, username: str, password: str) -> dict[str, int]:
    made = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            SEED_RESOLVED_PAIRS.format(username=username, password=password),
        ],
        cwd=ROOT,
        env=embedded_env(sqlite_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    return json.loads(made.stdout.strip().splitlines()[-1])


def make_admin(sqlite_path: Path) -> str:
    """A superuser in the demo's database, made the way an operator would."""
    password = secrets.token_urlsafe(12)
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update(
        DJANGO_DEBUG="1",
        SQLITE_PATH=str(sqlite_path),
        DJANGO_SUPERUSER_USERNAME=ADMIN,
        DJANGO_SUPERUSER_EMAIL="boss@example.test",
        DJANGO_SUPERUSER_PASSWORD=password,
    )
    made = subprocess.run(
        [sys.executable, "manage.py", "createsuperuser", "--noinput"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    return password


@pytest.fixture
def page(demo):
    with chromium_page() as page:
        yield page


def test_trader_starts_a_run_sees_a_trade_arrive_live_opens_it_and_stops_the_run(page, demo):
    from playwright.sync_api import expect

    log_in(page, demo)
    expect(page.locator("#socket-state")).to_have_text("● live")
    page.screenshot(path=SHOTS / "01-logged-in.png", full_page=True)

    # A bad start is refused in place, naming the field.
    page.fill("input[name=starting_usd]", "-5")
    page.click("#start-button")
    expect(page.locator('[data-error-for="starting_usd"]')).to_contain_text("starting_usd")

    page.fill("input[name=starting_usd]", "2500")
    page.fill("input[name=label]", "browser run")
    page.click("#start-button")
    card = page.locator(".run-card", has_text="browser run")
    expect(card).to_be_visible()
    expect(card.locator("[data-field=realised]")).to_contain_text("$0.00")  # beside expected P&L
    page.screenshot(path=SHOTS / "02-run-started.png", full_page=True)

    # A trade of this run arrives over the websocket without a reload (rows pushed live get the
    # "fresh" class); the demo's own run trades in the same table.
    run_id = card.get_attribute("data-run-id")
    fresh_row = page.locator(f'#trades tbody tr.fresh[data-run-id="{run_id}"]').first
    expect(fresh_row).to_be_visible(timeout=90_000)
    page.screenshot(path=SHOTS / "03-trade-arrived.png", full_page=True)

    fresh_row.click()
    modal = page.locator("#trade-modal")
    expect(modal).to_be_visible()
    expect(modal).to_contain_text("exchange_validation")
    expect(modal).to_contain_text("daily_cap")
    expect(modal.locator("h4", has_text="kalshi")).to_be_visible()
    expect(modal.locator("[data-timeline]").first).to_contain_text("decided")
    expect(modal.locator("table[data-book=seen]").first).to_be_visible()
    expect(modal.locator("table[data-book=arrival]").first).to_be_visible()
    page.screenshot(path=SHOTS / "04-trade-detail.png", full_page=True)
    page.keyboard.press("Escape")

    card.locator("button[data-stop]").click()
    expect(page.locator(".run-card", has_text="browser run")).to_have_count(0)
    history_row = page.locator("#history tbody tr", has_text="browser run")
    expect(history_row).to_contain_text("stopped")
    history_row.click()
    expect(page.locator("#equity-title")).to_contain_text("balance")
    expect(history_row.locator("[data-field=realised]")).to_contain_text("$")
    expect(page.locator("#equity-chart")).to_contain_text("realised P&L")  # its second P&L line
    page.screenshot(path=SHOTS / "05-history.png", full_page=True)
    assert_no_csp_violations(page)


def test_page_works_at_phone_width(page, demo):
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, demo)
    expect(page.locator("#start-form")).to_be_visible()
    page.screenshot(path=SHOTS / "06-phone.png", full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    wide = page.evaluate(
        "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > 392)"
        ".slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className)"
    )
    assert width <= 390, f"the page scrolls sideways at phone width ({width}px): {wide}"
    assert_no_csp_violations(page)


def test_no_page_breaks_the_content_security_policy(page, demo):
    """Every page the product serves, as a trader and as an admin, under the strict policy."""
    from playwright.sync_api import expect

    base = f"http://127.0.0.1:{demo.port}"
    log_in(page, demo)
    expect(page.locator("#socket-state")).to_have_text("● live")  # connect-src 'self' lets the socket in
    page.goto(f"{base}/accounts/profile/")
    expect(page.locator("input[name=min_net_edge_cents]")).to_be_visible()
    page.goto(f"{base}/api/docs/")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()  # the docs' script ran
    page.screenshot(path=SHOTS / "07-api-docs.png")
    for path in (
        "/simulator/status",
        "/simulator/runs",
        "/simulator/start",
        "/simulator/report",
        "/api/profile",
    ):
        page.goto(base + path)  # the browsable API
        expect(page.locator(".response-info")).to_be_visible()
    page.goto(f"{base}/simulator/")
    page.locator("form[action$='/logout/'] button").click()
    page.wait_for_url(re.compile(r".*/accounts/login/$"))

    page.goto(f"{base}/admin/login/")
    page.fill("input[name=username]", ADMIN)
    page.fill("input[name=password]", demo.admin_password)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_be_visible()
    for path in (
        "/admin/",
        "/admin/axes/accessattempt/",
        "/admin/simulator/simulatorrun/",
        "/admin/auth/user/",
    ):
        page.goto(base + path)
        expect(page.locator("#content")).to_be_visible()
    page.goto(f"{base}/admin/auth/user/add/")  # a form with the admin's widgets and their scripts
    expect(page.locator("input[name=username]")).to_be_visible()
    assert_no_csp_violations(page)


def test_equity_chart_of_a_run_with_one_trade_spans_minutes_around_it(page, demo):
    from datetime import UTC, datetime

    from playwright.sync_api import expect

    client = demo.logged_in_client()
    run = client.post("/simulator/start", json={"starting_usd": "1000", "label": "one trade"}).json()
    deadline = time.monotonic() + 90
    points = []
    while not points and time.monotonic() < deadline:
        points = client.get(f"/simulator/runs/{run['id']}/equity").json()["points"]
        time.sleep(0.1)
    client.post("/simulator/stop", json={"run_id": run["id"]}).raise_for_status()
    points = client.get(f"/simulator/runs/{run['id']}/equity").json()["points"]
    assert points, "no trade in 90 s"
    trade_times = [datetime.fromisoformat(p["at"]).timestamp() for p in points]
    balances = [float(p["balance_usd"]) for p in points]

    log_in(page, demo)
    page.locator("#history tbody tr", has_text="one trade").click()
    chart = page.locator("#equity-chart [role=img][aria-label]")
    expect(chart).to_have_attribute("aria-label", re.compile(r"UTC"))
    page.screenshot(path=SHOTS / "07-equity-one-trade.png", full_page=True)
    label = chart.get_attribute("aria-label")
    stamps = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", label)
    x_min, x_max = (datetime.fromisoformat(s).replace(tzinfo=UTC).timestamp() for s in stamps)
    y_min, y_max = (float(v.replace(",", "")) for v in re.findall(r"\$([\d,.]+)", label))

    assert x_min <= min(trade_times) and max(trade_times) <= x_max + 1, label
    assert x_max - x_min <= 3600, f"the time axis spans {x_max - x_min:.0f} s: {label}"
    if len(points) == 1:
        assert x_max - x_min == 600, f"a lone trade gets 5 minutes either side: {label}"
    assert y_min <= min(balances) and max(balances) <= y_max, label
    # Around the balances (a margin and round ticks), not from zero.
    spread = max(balances) - min(balances)
    assert y_max - y_min <= 1.5 * spread + 0.05 * max(balances), (
        f"the balance axis is not around the balance: {label}"
    )
    assert_no_csp_violations(page)


def test_execution_settings_are_refused_in_place_then_shown_on_the_run_card(page, demo):
    from playwright.sync_api import expect

    log_in(page, demo)
    page.fill("input[name=kalshi_latency_ms]", "5")
    page.click("#start-button")
    expect(page.locator('[data-error-for="kalshi_latency_ms"]')).to_contain_text("from 30 to 2000")
    expect(page.locator(".run-card", has_text="carry run")).to_have_count(0)

    page.fill("input[name=kalshi_latency_ms]", "300")
    page.select_option("select[name=sequencing]", "kalshi_first")
    page.select_option("select[name=unhedged]", "carry")
    page.fill("input[name=label]", "carry run")
    page.click("#start-button")
    card = page.locator(".run-card", has_text="carry run")
    expect(card.locator('[data-field="orders"]')).to_have_text("K IOC 300 ms · P FAK 250 ms")
    expect(card.locator('[data-field="legs"]')).to_have_text("Kalshi first, carry excess")
    page.screenshot(path=SHOTS / "08-execution-settings.png", full_page=True)
    card.locator("button[data-stop]").click()
    expect(page.locator(".run-card", has_text="carry run")).to_have_count(0)
    assert_no_csp_violations(page)


def test_legged_trade_shows_each_legs_timeline_both_books_and_the_unwind(page, demo):
    from playwright.sync_api import expect

    username, password = "legged-trader", secrets.token_urlsafe(12)
    trade_id = seed_legged_trade(demo.sqlite_path, username, password)
    log_in(page, demo, username, password)
    card = page.locator(".run-card", has_text="legged run")
    expect(card.locator("[data-field=reserved]")).to_have_text("$12.50")
    expect(card.locator("[data-field=unhedged]")).to_contain_text("$0.00")
    row = page.locator(f"#trades tbody tr[data-trade-id='{trade_id}']")
    expect(row.locator("[data-outcome]")).to_have_text("legged")

    row.click()
    modal = page.locator("#trade-modal")
    expect(modal.locator("h3 [data-outcome]")).to_have_text("legged")
    expect(modal.locator("[data-edges]")).to_contain_text(re.compile(r"signal edge\s*4\.5000¢"))
    expect(modal.locator("[data-edges]")).to_contain_text(
        re.compile(r"realised edge\s*\u2013")
    )  # none: nothing hedged
    kalshi = modal.locator("[data-leg=kalshi]")
    expect(kalshi.locator("[data-timeline] li")).to_have_text(
        [
            re.compile(r"decided\s*\+0 ms"),
            re.compile(r"sent\s*\+0 ms"),
            re.compile(r"arrived\s*\+120 ms"),
            re.compile(r"unwind sent\s*\+400 ms"),  # at the last leg's arrival (Polymarket's)
            re.compile(r"unwind arrived\s*\+580 ms"),
        ]
    )
    expect(kalshi.locator("table[data-book=seen] tbody tr")).to_have_text([re.compile(r"0\.44\s*30")])
    arrival = kalshi.locator("table[data-book=arrival] tbody tr")
    expect(arrival).to_have_count(2)
    expect(arrival.nth(0)).to_have_class("took")  # 10 of the 10 available at 0.44 taken
    expect(arrival.nth(0)).to_have_text(re.compile(r"0\.44\s*12\s*10\s*10"))
    sold = kalshi.locator("table[data-book=unwind] tbody tr.took")
    expect(sold).to_have_count(2)
    polymarket = modal.locator("[data-leg=polymarket]")
    expect(polymarket).to_contain_text("book moved past the limit")
    expect(polymarket.locator("table[data-book=arrival] tbody tr.took")).to_have_count(0)
    page.screenshot(path=SHOTS / "09-legged-trade.png", full_page=True)
    page.keyboard.press("Escape")

    # The 24 h report, beside its capture figures: what the trader's one trade met at arrival.
    arrival = page.locator("#report-arrival")
    expect(arrival.locator("[data-field=outcomes]")).to_contain_text("legged 1")
    expect(arrival.locator("[data-field=slippage]")).to_contain_text(
        re.compile(r"0 trades\)\s*\u2013 / \u2013 ¢")
    )
    expect(arrival.locator("[data-field=legging]")).to_contain_text("1, $0.59")
    expect(arrival.locator("[data-field=missed-at-arrival]")).to_contain_text("none")
    expect(arrival.locator("[data-field=arrival-latency]")).to_contain_text("kalshi 120 / 120 ms (1 orders)")
    expect(arrival.locator("[data-field=arrival-latency]")).to_contain_text("polymarket 400 / 400 ms")
    page.locator("#report-card").screenshot(path=SHOTS / "09-legged-report.png")
    assert_no_csp_violations(page)


def test_pairs_resolved_through_their_lifecycle_show_realised_pnl_the_resolved_points_and_the_disagreement(
    page, demo
):
    from playwright.sync_api import expect

    username, password = "resolving-trader", secrets.token_urlsafe(12)
    seeded = seed_resolved_pairs(demo.sqlite_path, username, password)
    log_in(page, demo, username, password)

    # Paid without a command: the agreeing pair's Kalshi YES leg pays $10 (P&L $0.45), the
    # disagreeing pair pays nothing (both legs lost: -$9.55).
    card = page.locator(".run-card", has_text="resolved run")
    expect(card.locator("[data-field=realised]")).to_have_text("$-9.10")
    agree = page.locator(f"#trades tbody tr[data-trade-id='{seeded['E2E-AGREE']}']")
    disagree = page.locator(f"#trades tbody tr[data-trade-id='{seeded['E2E-DISAGREE']}']")
    expect(agree.locator("[data-resolution]")).to_have_text("resolved")
    expect(disagree.locator("[data-resolution]")).to_have_text("venues disagreed")
    expect(page.locator("#report-summary [data-field=disagreements]")).to_contain_text("1 pairs, cost $10.00")

    disagree.click()
    modal = page.locator("#trade-modal")
    expect(modal.locator("[data-disagreement]")).to_contain_text("resolved this question differently")
    expect(modal.locator("[data-resolution-detail]")).to_contain_text(re.compile(r"realised P&L\s*\$-9\.55"))
    page.keyboard.press("Escape")

    page.locator(f"#history tbody tr[data-run-id='{seeded['run_id']}']").click()
    expect(page.locator("#equity-chart [data-field=resolved-points]")).to_contain_text(
        re.compile(r"^2 resolved points, the last at .* UTC: realised P&L \$-9\.10$")
    )
    page.screenshot(path=SHOTS / "15-resolved-pairs.png", full_page=True)
    assert_no_csp_violations(page)


def bad_recording() -> bytes:
    """A gzip recording whose third line goes back in time."""
    from tests.ingest.test_recording_files import HEADER, kalshi

    lines = [HEADER, kalshi(2_000), kalshi(1_000)]
    return gzip.compress(b"".join(json.dumps(line).encode() + b"\n" for line in lines))


def test_trader_backtests_the_bundled_recording_over_a_grid_and_compares_the_points(page, demo):
    from playwright.sync_api import expect

    log_in(page, demo)
    form = page.locator("#backtest-form")
    expect(form.locator("#recording-select option")).not_to_have_count(0)
    page.select_option("#recording-select", "bundled/demo_recording.jsonl.gz")

    # A bad upload is refused in place, naming its first bad line.
    page.set_input_files(
        "#recording-file",
        files=[{"name": "backwards.jsonl.gz", "mimeType": "application/gzip", "buffer": bad_recording()}],
    )
    page.click("#recording-upload")
    expect(page.locator("#upload-error")).to_contain_text("line 3: t 1000 is earlier")

    # A bad grid value is refused under its setting.
    grid_edge = form.locator('input[data-grid="min_net_edge_cents"]')
    grid_edge.fill("1,abc")
    page.click("#backtest-button")
    expect(form.locator('[data-backtest-error="grid.min_net_edge_cents"]')).to_contain_text("decimal number")

    grid_edge.fill("1,2")
    form.locator('input[data-backtest="seed"]').fill("7")
    form.locator('input[data-backtest="label"]').fill("browser sweep")
    page.click("#backtest-button")
    expect(form.locator('[data-backtest-error="grid.min_net_edge_cents"]')).to_have_text("")
    item = page.locator("#backtest-list li.backtest", has_text="browser sweep")
    expect(item.locator("[data-progress]")).to_be_visible()
    page.screenshot(path=SHOTS / "10-backtest-progress.png", full_page=True)
    expect(item.locator("[data-status]")).to_have_text("done", timeout=240_000)
    expect(item.locator("[data-progress]")).to_contain_text("2 grid points over 39,304 updates")

    # The comparison opens when it is done: a row per point, best P&L first, and the charts.
    result = page.locator("#backtest-result")
    rows = result.locator("#backtest-table tbody tr")
    expect(rows).to_have_count(2)
    pnl = [float(re.sub(r"[^\d.-]", "", rows.nth(i).locator("td").nth(1).inner_text())) for i in range(2)]
    assert pnl == sorted(pnl, reverse=True)
    expect(result.locator("#backtest-pnl-chart [role=img]")).to_have_attribute(
        "aria-label", "Expected P&L against min_net_edge_cents, 2 grid points"
    )
    expect(result.locator("#backtest-equity-chart [role=img]")).to_have_attribute(
        "aria-label", re.compile(r"Equity curves of [12] grid points")
    )
    csv_link = result.locator("#backtest-csv")
    download = page.request.get(f"http://127.0.0.1:{demo.port}{csv_link.get_attribute('href')}")
    assert download.status == 200
    lines = download.text().splitlines()
    assert lines[0].startswith("min_net_edge_cents,run_id,label,trades") and len(lines) == 3
    page.screenshot(path=SHOTS / "11-backtest-compared.png", full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    page.locator("#backtest-list [data-show-backtest]").first.click()
    expect(page.locator("#backtest-table tbody tr")).to_have_count(2)
    page.screenshot(path=SHOTS / "12-backtest-phone.png", full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways at phone width ({width}px)"
    assert_no_csp_violations(page)
