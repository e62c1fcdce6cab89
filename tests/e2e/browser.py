"""Debian's Chromium (headless, driven by Playwright) for the page's tests, reporting every
Content-Security-Policy violation in the console so that each test can fail on one.

Screenshots of the main states go to artifacts/screenshots/ (not committed).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
# Chromium reports a blocked load or inline script/style in the console; the event also names
# what a page's own script tried (an eval, a style attribute set from markup).
REPORT_CSP_VIOLATIONS = (
    "document.addEventListener('securitypolicyviolation', e => console.error("
    "`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`))"
)


@contextmanager
def chromium_page() -> Iterator:
    """A page in a fresh headless Chromium, 1280 x 900, collecting CSP violations."""
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
        page.csp_violations = []
        page.add_init_script(REPORT_CSP_VIOLATIONS)
        page.on("console", lambda message: note_csp_violation(page, message.text))
        yield page
        context.close()
        browser.close()


def note_csp_violation(page, text: str) -> None:
    if "Content Security Policy" in text or text.startswith("CSP violation"):
        page.csp_violations.append(f"{page.url}: {text}")


def assert_no_csp_violations(page) -> None:
    assert page.csp_violations == [], "\n".join(page.csp_violations)


def log_in(page, demo, username: str | None = None, password: str | None = None) -> None:
    page.goto(f"http://127.0.0.1:{demo.port}/simulator/")
    page.fill("input[name=username]", username or demo.username)
    page.fill("input[name=password]", password or demo.password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/simulator/$"))
