"""The /simulator/ page in Debian's Chromium (headless, driven by Playwright), against the demo.

Screenshots of the main states go to artifacts/screenshots/ (not committed).
"""

import re
import time
from pathlib import Path

import pytest

from tests.e2e.demo_process import DemoProcess

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    process = DemoProcess(tmp_path_factory.mktemp("demo"), speed=40.0)
    process.wait_for_login()
    yield process
    process.stop()


@pytest.fixture
def page(demo):
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: ./dev test installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(20_000)
        yield page
        context.close()
        browser.close()


def log_in(page, demo):
    page.goto(f"http://127.0.0.1:{demo.port}/simulator/")
    page.fill("input[name=username]", demo.username)
    page.fill("input[name=password]", demo.password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/simulator/$"))


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
    page.screenshot(path=SHOTS / "02-run-started.png", full_page=True)

    # A trade arrives over the websocket without a reload (rows pushed live get the "fresh" class).
    fresh_row = page.locator("#trades tbody tr.fresh").first
    expect(fresh_row).to_be_visible(timeout=90_000)
    page.screenshot(path=SHOTS / "03-trade-arrived.png", full_page=True)

    fresh_row.click()
    modal = page.locator("#trade-modal")
    expect(modal).to_be_visible()
    expect(modal).to_contain_text("exchange_validation")
    expect(modal).to_contain_text("daily_cap")
    expect(modal.locator("h4", has_text="kalshi")).to_be_visible()
    page.screenshot(path=SHOTS / "04-trade-detail.png", full_page=True)
    page.keyboard.press("Escape")

    card.locator("button[data-stop]").click()
    expect(page.locator(".run-card", has_text="browser run")).to_have_count(0)
    history_row = page.locator("#history tbody tr", has_text="browser run")
    expect(history_row).to_contain_text("stopped")
    history_row.click()
    expect(page.locator("#equity-title")).to_contain_text("balance")
    page.screenshot(path=SHOTS / "05-history.png", full_page=True)


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
    assert y_max - y_min <= 0.05 * max(balances), f"the balance axis is not around the balance: {label}"
