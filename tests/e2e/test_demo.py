"""The README's first command, exercised: trades arrive through the API, Ctrl-C stops it all."""

import time

import pytest

from tests.e2e.demo_process import DemoProcess

pytestmark = pytest.mark.slow


def test_demo_serves_trades_within_a_minute_and_stops_on_ctrl_c(tmp_path):
    demo = DemoProcess(tmp_path, speed=10.0)  # the demo's own default pace
    try:
        demo.wait_for_login()
        client = demo.logged_in_client()
        trades, deadline = [], time.monotonic() + 60
        while not trades and time.monotonic() < deadline:
            status = client.get("/simulator/status")
            assert status.status_code == 200, status.text[:500]
            trades = status.json()["recent_trades"]
            time.sleep(1)
        assert trades, f"no trade within a minute of the URL appearing:\n{demo.log()[-3000:]}"
        trade = trades[0]
        for leg in trade["legs"]:
            best_ask = min(float(level["price"]) for level in leg["book"])
            assert all(best_ask <= float(f["price"]) <= float(leg["limit_price"]) for f in leg["fills"])
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
        returncode = demo.stop()
    assert "demo stopped" in demo.log(), demo.log()[-2000:]
    assert returncode == 0, demo.log()[-2000:]
