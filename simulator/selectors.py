"""Reads of simulator runs, for the services, the engine and ingest (HackSoft selectors)."""

from __future__ import annotations

from decimal import Decimal
from typing import NamedTuple

from django.db import connection
from django.db.models import Q, QuerySet

from simulator.models import Backtest, SimulatorRun, SimulatorTrade


def running_runs(*, user_id: int | None = None) -> QuerySet[SimulatorRun]:
    """Running live runs: what ingest feeds and what counts toward the limit (a backtest's runs
    run on their recording's clock, apart)."""
    runs = SimulatorRun.objects.filter(status=SimulatorRun.RUNNING, kind=SimulatorRun.LIVE)
    return runs.filter(user_id=user_id) if user_id is not None else runs


def running_runs_watching(opportunity_key: str, *, user_id: int | None = None) -> list[SimulatorRun]:
    """Running runs (of one user, or of everyone) whose keys are empty (= all) or include the key."""
    runs = running_runs(user_id=user_id).order_by("id")
    if connection.features.supports_json_field_contains:
        return list(runs.filter(Q(opportunity_keys=[]) | Q(opportunity_keys__contains=[opportunity_key])))
    # SQLite has no JSON containment: a user has at most 5 running runs, so filter here.
    return [run for run in runs if run.watches(opportunity_key)]


def latest_running_run(*, user_id: int) -> SimulatorRun | None:
    return running_runs(user_id=user_id).order_by("-started_at", "-id").first()


def user_runs(*, user_id: int) -> QuerySet[SimulatorRun]:
    """The user's live runs, newest first (a backtest's runs are listed with their backtest)."""
    return SimulatorRun.objects.filter(user_id=user_id, kind=SimulatorRun.LIVE).order_by("-started_at", "-id")


class RunThreshold(NamedTuple):
    """What ingest needs to emit intents for one user: the loosest thresholds over the user's
    running runs (each run still judges an intent against its own snapshot)."""

    user_id: int
    min_net_edge_cents: Decimal
    max_leg_usd: Decimal
    watched_keys: frozenset[str] | None  # None: some run watches every key

    def watches(self, opportunity_key: str) -> bool:
        return self.watched_keys is None or opportunity_key in self.watched_keys


def running_thresholds() -> list[RunThreshold]:
    """One RunThreshold per user with a running run whose snapshot has both thresholds set:
    the minimum `min_net_edge_cents` and the maximum `max_leg_usd` over those runs, and the
    union of their keys. Runs with a threshold unset are left out: they would skip every intent."""
    by_user: dict[int, RunThreshold] = {}
    rows = (
        running_runs()
        .filter(min_net_edge_cents__isnull=False, max_leg_usd__isnull=False)
        .values_list("user_id", "min_net_edge_cents", "max_leg_usd", "opportunity_keys")
        .order_by("user_id", "id")
    )
    for user_id, min_edge, max_leg, keys in rows:
        watched = frozenset(keys) if keys else None
        seen = by_user.get(user_id)
        if seen is not None:
            min_edge = min(min_edge, seen.min_net_edge_cents)
            max_leg = max(max_leg, seen.max_leg_usd)
            watched = None if watched is None or seen.watched_keys is None else watched | seen.watched_keys
        by_user[user_id] = RunThreshold(user_id, min_edge, max_leg, watched)
    return list(by_user.values())


# --- The API's read paths (shared with bench/floor.py, which must run the same queries) ----------


def own_run(*, user_id: int, run_id: int) -> SimulatorRun | None:
    return SimulatorRun.objects.filter(pk=run_id, user_id=user_id).first()


def latest_trades(*, user_id: int) -> QuerySet[SimulatorTrade]:
    """A user's trades, newest decision first."""
    return SimulatorTrade.objects.filter(user_id=user_id, run__kind=SimulatorRun.LIVE).order_by(
        "-decided_at", "-id"
    )


def run_trades(*, run_id: int) -> QuerySet[SimulatorTrade]:
    """One run's trades, newest decision first."""
    return SimulatorTrade.objects.filter(run_id=run_id).order_by("-decided_at", "-id")


def user_backtests(*, user_id: int) -> QuerySet[Backtest]:
    """The user's backtests, newest first."""
    return Backtest.objects.filter(user_id=user_id).order_by("-created_at", "-id")


def backtest_run_ids(backtest_ids: list[int]) -> dict[int, list[int]]:
    """Each backtest's runs (its grid points, in grid order), in one query."""
    by_backtest: dict[int, list[int]] = {backtest_id: [] for backtest_id in backtest_ids}
    rows = SimulatorRun.objects.filter(backtest_id__in=backtest_ids).order_by("id")
    for backtest_id, run_id in rows.values_list("backtest_id", "id"):
        by_backtest[backtest_id].append(run_id)
    return by_backtest
