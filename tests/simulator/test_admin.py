"""Run review in the admin: lists, filters, read-only money, stop action, CSV export."""

import pytest
from django.contrib.auth import get_user_model

from simulator.models import SimulatorRun
from tests.simulator.surface_fixtures import make_decision, make_run, make_span, make_trade

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    admin_user = get_user_model().objects.create_superuser("boss", "boss@example.test", "pw-for-tests-only")
    client.force_login(admin_user)
    return client


def test_runs_changelist_shows_runs_with_money_and_counts(staff, user):
    make_run(user, label="fed watcher", opportunity_keys=["FED-CUT-MAR"])
    page = staff.get("/admin/simulator/simulatorrun/")
    assert page.status_code == 200
    assert b"fed watcher" in page.content


@pytest.mark.parametrize(
    "query",
    [
        "status__exact=running",
        "opportunity_key=FED-CUT-MAR",
        "opportunity_key=__all__",
        "q=fed",
        "started_at__year=2026",
    ],
)
def test_runs_filters_and_search(staff, user, query):
    fed = make_run(user, label="fed watcher", opportunity_keys=["FED-CUT-MAR"])
    everything = make_run(user, label="all keys", opportunity_keys=[], status="stopped")
    page = staff.get(f"/admin/simulator/simulatorrun/?{query}")
    assert page.status_code == 200
    shown = {run.pk for run in page.context["cl"].result_list}
    expected = {
        "status__exact=running": {fed.pk},
        "opportunity_key=FED-CUT-MAR": {fed.pk},
        "opportunity_key=__all__": {everything.pk},
        "q=fed": {fed.pk},
        "started_at__year=2026": {fed.pk, everything.pk},
    }[query]
    assert shown == expected


def test_run_page_has_trades_and_decisions_and_read_only_money(staff, user):
    run = make_run(user)
    make_trade(run)
    make_decision(run, span=make_span(), reason_code="balance")
    page = staff.get(f"/admin/simulator/simulatorrun/{run.pk}/change/")
    assert page.status_code == 200
    assert b'name="balance_usd"' not in page.content  # read-only: no input
    assert b'name="label"' in page.content
    assert b"balance" in page.content
    assert f"run__id__exact={run.pk}".encode() in page.content


def test_stop_selected_runs_action(staff, user):
    running = make_run(user)
    stopped = make_run(user, status="stopped")
    page = staff.post(
        "/admin/simulator/simulatorrun/",
        {"action": "stop_selected_runs", "_selected_action": [running.pk, stopped.pk]},
        follow=True,
    )
    assert page.status_code == 200
    running.refresh_from_db()
    assert running.status == SimulatorRun.STOPPED
    assert "already stopped" in page.content.decode()


def test_export_trades_csv(staff, user):
    run = make_run(user)
    trade = make_trade(run)
    response = staff.post(
        "/admin/simulator/simulatorrun/", {"action": "export_trades_csv", "_selected_action": [run.pk]}
    )
    assert response["Content-Type"] == "text/csv"
    lines = response.content.decode().splitlines()
    assert lines[0].startswith("id,run_id,intent_id")
    assert lines[1].startswith(f"{trade.pk},{run.pk},")


@pytest.mark.parametrize("query", ["venue=kalshi", "venue=polymarket", "opportunity_key=FED-CUT-MAR"])
def test_trades_changelist_filters(staff, user, query):
    trade = make_trade(make_run(user))
    page = staff.get(f"/admin/simulator/simulatortrade/?{query}")
    assert page.status_code == 200
    assert [row.pk for row in page.context["cl"].result_list] == [trade.pk]


def test_trade_and_decision_pages_are_read_only(staff, user):
    trade = make_trade(make_run(user))
    for url in (
        f"/admin/simulator/simulatortrade/{trade.pk}/change/",
        f"/admin/simulator/decision/{trade.decision_id}/change/",
        "/admin/simulator/decision/?outcome__exact=traded&reason_code=",
    ):
        page = staff.get(url)
        assert page.status_code == 200
    assert b'name="cost_usd"' not in staff.get(f"/admin/simulator/simulatortrade/{trade.pk}/change/").content
