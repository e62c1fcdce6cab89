"""Starting, stopping and listing runs through the HTTP API."""

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from simulator.models import SimulatorRun
from tests.simulator.factories import set_thresholds
from tests.simulator.surface_fixtures import NOW, make_pair, make_run, make_trade

pytestmark = pytest.mark.django_db


@pytest.fixture
def fed(db):
    return make_pair("FED-CUT-MAR")


def test_start_creates_a_run_with_warnings(api, user, fed):
    set_thresholds(user)
    answer = api.post(
        "/simulator/start",
        {"starting_usd": "1000", "opportunity_key": "FED-CUT-MAR", "duration_minutes": 60, "label": "fed"},
        format="json",
    )
    assert answer.status_code == 201, answer.json()
    body = answer.json()
    assert body["status"] == "running"
    assert body["starting_usd"] == body["balance_usd"] == "1000.0000"
    assert body["opportunity_keys"] == ["FED-CUT-MAR"]
    assert body["min_net_edge_cents"] == "1.00"
    assert any("keys" in warning for warning in body["warnings"])
    assert SimulatorRun.objects.get(pk=body["id"]).user == user


def test_start_merges_opportunity_key_into_opportunity_keys(api, fed):
    make_pair("CPI-HOT")
    answer = api.post(
        "/simulator/start",
        {"starting_usd": "50", "opportunity_key": "CPI-HOT", "opportunity_keys": ["FED-CUT-MAR", "CPI-HOT"]},
        format="json",
    )
    assert answer.status_code == 201
    assert answer.json()["opportunity_keys"] == ["CPI-HOT", "FED-CUT-MAR"]


def test_start_without_keys_watches_every_key(api):
    answer = api.post("/simulator/start", {"starting_usd": "10"}, format="json")
    assert answer.status_code == 201
    assert answer.json()["opportunity_keys"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "starting_usd"),
        ({"starting_usd": "abc"}, "starting_usd"),
        ({"starting_usd": "-5"}, "starting_usd"),
        ({"starting_usd": "NaN"}, "starting_usd"),
        ({"starting_usd": "1.123456"}, "starting_usd"),
        ({"starting_usd": "10", "duration_minutes": -1}, "duration_minutes"),
        ({"starting_usd": "10", "duration_minutes": 7 * 24 * 60 + 1}, "duration_minutes"),
        ({"starting_usd": "10", "duration_minutes": "soon"}, "duration_minutes"),
        ({"starting_usd": "10", "opportunity_keys": "FED"}, "opportunity_keys"),
        ({"starting_usd": "10", "opportunity_keys": ["NOPE"]}, "opportunity_keys"),
        ({"starting_usd": "10", "opportunity_key": "bad key!"}, "opportunity_key"),
        ({"starting_usd": "10", "label": "x" * 121}, "label"),
        ({"starting_usd": "10", "notes": "x" * 2001}, "notes"),
        ({"starting_usd": "10", "label": {"a": 1}}, "label"),
    ],
)
def test_start_names_the_bad_field(api, body, field):
    answer = api.post("/simulator/start", body, format="json")
    assert answer.status_code == 400
    assert field in answer.json(), answer.json()
    assert all(isinstance(message, str) and message for message in answer.json()[field])


def test_malformed_json_is_a_400(api):
    answer = api.post("/simulator/start", "{not json", content_type="application/json")
    assert answer.status_code == 400
    assert "JSON" in answer.json()["detail"]


def test_a_json_list_body_is_a_400(api):
    answer = api.post("/simulator/start", [1, 2], format="json")
    assert answer.status_code == 400


def test_sixth_running_run_is_refused(api, user):
    for _ in range(5):
        make_run(user)
    answer = api.post("/simulator/start", {"starting_usd": "10"}, format="json")
    assert answer.status_code == 409
    assert "stop one first" in answer.json()["detail"][0]


def test_stop_without_id_stops_the_latest_run(api, user):
    older = make_run(user, started_at=NOW)
    newer = make_run(user, started_at=NOW.replace(hour=13))
    answer = api.post("/simulator/stop", {}, format="json")
    assert answer.status_code == 200
    assert answer.json()["id"] == newer.pk
    assert answer.json()["status"] == "stopped"
    older.refresh_from_db()
    assert older.status == "running"


def test_stop_by_id_with_a_reason(api, user):
    run = make_run(user)
    answer = api.post("/simulator/stop", {"run_id": run.pk, "reason": "done testing"}, format="json")
    assert answer.status_code == 200
    assert answer.json()["stop_reason"] == "done testing"


def test_stop_another_users_run_is_404(api, other_user):
    run = make_run(other_user)
    answer = api.post("/simulator/stop", {"run_id": run.pk}, format="json")
    assert answer.status_code == 404
    run.refresh_from_db()
    assert run.status == "running"


def test_stop_with_nothing_running_is_404(api):
    assert api.post("/simulator/stop", {}, format="json").status_code == 404


def test_stop_a_stopped_run_is_409(api, user):
    run = make_run(user, status="stopped")
    assert api.post("/simulator/stop", {"run_id": run.pk}, format="json").status_code == 409


@pytest.mark.parametrize("run_id", ["abc", 0, -3, 1.5, 2**70])
def test_stop_names_a_bad_run_id(api, run_id):
    answer = api.post("/simulator/stop", {"run_id": run_id}, format="json")
    assert answer.status_code == 400
    assert "run_id" in answer.json()


def test_runs_list_is_paginated_newest_first_and_only_mine(api, user, other_user):
    first = make_run(user, started_at=NOW)
    second = make_run(user, started_at=NOW.replace(hour=14))
    make_run(other_user)
    body = api.get("/simulator/runs").json()
    assert set(body) >= {"count", "next", "previous", "results"}
    assert body["count"] == 2
    assert [run["id"] for run in body["results"]] == [second.pk, first.pk]


def test_run_detail_and_another_users_run(api, user, other_user):
    mine = make_run(user, label="mine", starting_usd="250")
    theirs = make_run(other_user)
    body = api.get(f"/simulator/runs/{mine.pk}").json()
    assert (body["label"], body["starting_usd"]) == ("mine", "250.0000")
    assert api.get(f"/simulator/runs/{theirs.pk}").status_code == 404
    assert api.get("/simulator/runs/99999999999999999999").status_code == 404


def test_status_and_active_show_running_runs_and_recent_trades(api, user, other_user):
    run = make_run(user)
    make_run(user, status="stopped")
    trade = make_trade(run)
    make_trade(make_run(other_user))
    status_body = api.get("/simulator/status").json()
    assert [r["id"] for r in status_body["runs"]] == [run.pk]
    assert [t["id"] for t in status_body["recent_trades"]] == [trade.pk]
    active = api.get("/simulator/active").json()
    assert (active["active"], active["count"], active["max_running"]) == (True, 1, 5)


def test_pairs_lists_known_opportunity_keys(api, fed):
    make_pair("OLD", active=False)
    body = api.get("/simulator/pairs").json()
    assert [pair["opportunity_key"] for pair in body["results"]] == ["FED-CUT-MAR"]


@pytest.mark.parametrize(
    "path",
    ["/simulator/status", "/simulator/active", "/simulator/runs", "/simulator/runs/1", "/simulator/pairs"],
)
def test_reads_need_a_user(db, path):
    assert APIClient().get(path).status_code in (401, 403)


@pytest.mark.parametrize("path", ["/simulator/start", "/simulator/stop"])
def test_writes_need_a_user(db, path):
    assert APIClient().post(path, {"starting_usd": "10"}, format="json").status_code in (401, 403)


def test_run_list_queries_do_not_grow_with_runs(api, user, django_assert_max_num_queries):
    for _ in range(30):
        make_run(user, status="stopped")
    with django_assert_max_num_queries(4):
        assert api.get("/simulator/runs").json()["count"] == 30


def test_starting_usd_decimal_survives_exactly(api):
    body = api.post("/simulator/start", {"starting_usd": "1234.5678"}, format="json").json()
    assert Decimal(body["balance_usd"]) == Decimal("1234.5678")
