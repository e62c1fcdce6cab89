"""Writes of simulator runs: start, stop, and a resolved pair's payouts. Each validates fully
before it writes; each writes in one transaction and broadcasts after commit. (Intents and span
starts reach the runs through `simulator.intake`; the decisions are `simulator.engine`'s.)"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import UserProfile
from accounts.secret_rules import EXCHANGES
from accounts.selectors import exchanges_with_secrets
from config.errors import ConflictError, NotFoundError
from config.numbers import DecimalRule, WholeRule
from ingest.models import MarketPair
from simulator import run_settings, selectors
from simulator.core.payout import RESULTS, carried_contracts, payout_usd
from simulator.engine.broadcast import broadcast_run
from simulator.engine.expiry import end_run
from simulator.models import SimulatorRun, SimulatorTrade

logger = logging.getLogger(__name__)

MAX_STARTING_USD = Decimal("10000000")
STARTING_USD = DecimalRule(Decimal("0.0001"), MAX_STARTING_USD, places=4)  # the column keeps 4 places
RUN_ID = WholeRule(1, 2**63 - 1)
MAX_LABEL_CHARS = 120
MAX_NOTES_CHARS = 2000


def max_duration_minutes() -> int:
    return settings.SIMULATOR_MAX_DURATION_MINUTES


def max_running_per_user() -> int:
    return settings.SIMULATOR_MAX_RUNNING_PER_USER


def duration_minutes_rule() -> WholeRule:
    return WholeRule(0, max_duration_minutes(), unit="minutes")


def _clean_duration_minutes(raw: Any) -> int:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return 0  # not given: until stopped
    return duration_minutes_rule().parse(raw)


def _clean_opportunity_keys(raw: Any) -> list[str]:
    if raw is None or raw == "":
        return []
    if isinstance(raw, str) or not isinstance(raw, list | tuple):
        raise ValueError("must be a list of opportunity keys")
    keys: list[str] = []
    for key in raw:
        if not isinstance(key, str) or not key.strip():
            raise ValueError("each opportunity key must be a non-empty string")
        if key.strip() not in keys:
            keys.append(key.strip())
    known = set(MarketPair.objects.filter(opportunity_key__in=keys).values_list("opportunity_key", flat=True))
    unknown = [key for key in keys if key not in known]
    if unknown:
        raise ValueError(f"unknown opportunity key{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
    return keys


def _clean_text(raw: Any, limit: int) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise ValueError("must be text")
    if len(raw) > limit:
        raise ValueError(f"must be at most {limit} characters (got {len(raw)})")
    return raw.strip()


def clean_start_input(
    *,
    starting_usd: Any,
    opportunity_keys: Any,
    duration_minutes: Any,
    label: Any,
    notes: Any,
    execution: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every field checked; raises ValidationError({field: [message]}) listing all bad fields.
    `execution` maps run settings (simulator.run_settings.FIELDS) to what was given (missing or
    None: the default); they come back one by one and together as `sim_config`, a SimConfig."""
    execution = execution or {}
    cleaners: dict[str, Callable[[], Any]] = {
        "starting_usd": lambda: STARTING_USD.parse(starting_usd),
        "opportunity_keys": lambda: _clean_opportunity_keys(opportunity_keys),
        "duration_minutes": lambda: _clean_duration_minutes(duration_minutes),
        "label": lambda: _clean_text(label, MAX_LABEL_CHARS),
        "notes": lambda: _clean_text(notes, MAX_NOTES_CHARS),
    }
    for name in run_settings.CHOICES:
        cleaners[name] = partial(run_settings.clean_choice, name, execution.get(name))
    for name in run_settings.LATENCY_VENUES:
        cleaners[name] = partial(run_settings.clean_latency_ms, name, execution.get(name))
    cleaned: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, clean in cleaners.items():
        try:
            cleaned[name] = clean()
        except ValueError as error:
            errors[name] = [str(error)]
    if not errors:
        try:
            cleaned["sim_config"] = run_settings.sim_config(cleaned)
        except ValueError as error:  # settings each fine alone that the models refuse together
            errors["detail"] = [f"these execution settings do not work together: {error}"]
    if errors:
        raise ValidationError(errors)
    return cleaned


def start_warnings(*, profile: UserProfile, user_id: int) -> list[str]:
    """What will make the run's checks skip every trade: unset thresholds, missing keys."""
    warnings = [
        f"{name} is not set on your profile: the checks will skip trades"
        for name in profile.missing_thresholds()
    ]
    saved = exchanges_with_secrets(user_id=user_id)
    warnings += [
        f"no {exchange} keys saved on your profile: the checks will skip trades"
        for exchange in EXCHANGES
        if exchange not in saved
    ]
    return warnings


def start_run(
    *,
    user,
    starting_usd: Any,
    opportunity_keys: list[str] | None = None,
    duration_minutes: int | None = None,
    label: str = "",
    notes: str = "",
    kalshi_order_type: str | None = None,
    polymarket_order_type: str | None = None,
    sequencing: str | None = None,
    unhedged: str | None = None,
    kalshi_latency_ms: Any = None,
    polymarket_latency_ms: Any = None,
    now: datetime | None = None,
) -> tuple[SimulatorRun, list[str]]:
    """Start a run with `starting_usd` of fake money; returns it and warnings a user should read.
    The execution settings (None: the default, simulator.run_settings) become the run's
    `sim_config`, the model its decisions and arrivals follow.

    Raises ValidationError naming the bad field, or ConflictError (409) when the user already has
    the maximum of running runs. The count is taken under a row lock on the user's profile, so
    concurrent starts queue one behind the other and cannot pass the limit together."""
    cleaned = clean_start_input(
        starting_usd=starting_usd,
        opportunity_keys=opportunity_keys,
        duration_minutes=duration_minutes,
        label=label,
        notes=notes,
        execution={
            "kalshi_order_type": kalshi_order_type,
            "polymarket_order_type": polymarket_order_type,
            "sequencing": sequencing,
            "unhedged": unhedged,
            "kalshi_latency_ms": kalshi_latency_ms,
            "polymarket_latency_ms": polymarket_latency_ms,
        },
    )
    now = now or timezone.now()
    UserProfile.objects.get_or_create(user=user)
    with transaction.atomic():
        profile = UserProfile.objects.select_for_update().get(user=user)
        limit = max_running_per_user()
        if selectors.running_runs(user_id=user.pk).count() >= limit:
            raise ConflictError(f"you already have {limit} running simulator runs; stop one first")
        minutes = cleaned["duration_minutes"]
        run = SimulatorRun.objects.create(
            user=user,
            status=SimulatorRun.RUNNING,
            label=cleaned["label"],
            notes=cleaned["notes"],
            opportunity_keys=cleaned["opportunity_keys"],
            starting_usd=cleaned["starting_usd"],
            balance_usd=cleaned["starting_usd"],
            min_net_edge_cents=profile.min_net_edge_cents,
            max_leg_usd=profile.max_leg_usd,
            daily_cap_usd=profile.daily_cap_usd,
            duration_minutes=minutes,
            started_at=now,
            ends_at=now + timedelta(minutes=minutes or max_duration_minutes()),
            seed=secrets.randbits(63),
            sim_config=cleaned["sim_config"].as_json(),
            traded_day=now.astimezone(UTC).date(),
        )
        warnings = start_warnings(profile=profile, user_id=user.pk)
        transaction.on_commit(partial(broadcast_run, run))
    logger.info("event=run_started run_id=%s user_id=%s keys=%s", run.pk, user.pk, len(run.opportunity_keys))
    return run, warnings


def stop_run(
    *, user, run_id: int | None = None, reason: str = "stopped by user", now: datetime | None = None
) -> SimulatorRun:
    """Stop one of the user's runs (no id: the latest running one).

    NotFoundError (404) for an unknown id or another user's run; ConflictError (409) when the
    run has already ended."""
    now = now or timezone.now()
    with transaction.atomic():
        runs = SimulatorRun.objects.select_for_update()
        if run_id is None:
            latest = selectors.latest_running_run(user_id=user.pk)
            if latest is None:
                raise NotFoundError("you have no running simulator run")
            run = runs.get(pk=latest.pk)
        else:
            run = runs.filter(pk=run_id, user=user).first()
            if run is None:
                raise NotFoundError(f"run {run_id} not found")
        if run.status != SimulatorRun.RUNNING:
            raise ConflictError(f"run {run.pk} is already {run.status}")
        if run.kind == SimulatorRun.BACKTEST:
            raise ConflictError(
                f"run {run.pk} is a point of backtest {run.backtest_id}: it ends with its recording"
            )
        end_run(run, status=SimulatorRun.STOPPED, reason=reason, now=now)
    logger.info("event=run_stopped run_id=%s user_id=%s", run.pk, user.pk)
    return run


def resolve_pair(
    *,
    opportunity_key: str,
    kalshi: str,
    polymarket: str,
    correction: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The pair's markets resolved (`kalshi` and `polymarket`: each venue's result, "yes" or
    "no"): every trade on it not yet resolved, in every run whatever its status, gets its payout
    ($1 per contract of each leg whose side won: simulator.core.payout), and its run's balance
    and realised P&L move by it (balance + payout, pnl + payout - cost), under the run's row lock
    so no decision interleaves. Exactly once per trade: resolving again changes nothing. A trade
    whose orders are still on their way (milliseconds) is left for the next resolution: what it
    holds is not known yet. A carried (unhedged) excess pays like any held contract.

    The results are recorded on the pair (the first call also stamps its `resolved_at`); venues
    that resolved differently flag the pair and the trades paid (`resolution_disagreement`).
    Results once recorded stay (a venue's first word, as the follower hears it), unless
    `correction` (`sim_resolve`): a correction with other results re-pays the trades already
    paid by the difference: each gets the payout the new results give, and its run's
    balance and realised P&L move by new payout - old payout (`corrected` counts them).
    -> {"trades": n, "runs": n, "payout_usd": Decimal, "pnl_usd": Decimal, "in_flight": n,
    "corrected": n, "resolution_disagreement": bool}."""
    now = now or timezone.now()
    errors = {
        venue: f"must be one of {', '.join(RESULTS)}"
        for venue, result in (("kalshi", kalshi), ("polymarket", polymarket))
        if result not in RESULTS
    }
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        pair = MarketPair.objects.select_for_update().filter(opportunity_key=opportunity_key).first()
        if pair is None:
            raise NotFoundError(
                f"no market pair with opportunity key {opportunity_key!r}", field="opportunity_key"
            )
        if pair.kalshi_result and pair.poly_result and not correction:
            kalshi, polymarket = pair.kalshi_result, pair.poly_result
        changed = (pair.kalshi_result, pair.poly_result) != (kalshi, polymarket)
        pair.set_results(kalshi=kalshi, polymarket=polymarket)
        pair.resolved_at = pair.resolved_at or now
        pair.save(update_fields=["kalshi_result", "poly_result", "resolution_disagreement", "resolved_at"])
    disagreement = pair.resolution_disagreement
    results = {"kalshi": kalshi, "polymarket": polymarket}
    # A backtest's trades live on their recording's timeline: only what it recorded settles them.
    live = SimulatorTrade.objects.filter(opportunity_key=opportunity_key, run__kind=SimulatorRun.LIVE)
    open_trades = live.filter(resolved_at__isnull=True)
    unresolved = open_trades.exclude(arrival_outcome="")
    # Paid on other results before (a correction): paid again by the difference.
    repaid = live.filter(resolved_at__isnull=False)
    if not changed:
        repaid = repaid.none()
    summary: dict[str, Any] = {
        "trades": 0,
        "runs": 0,
        "payout_usd": Decimal(0),
        "pnl_usd": Decimal(0),
        "in_flight": open_trades.filter(arrival_outcome="").count(),
        "corrected": 0,
        "resolution_disagreement": disagreement,
    }
    run_ids = set(unresolved.values_list("run_id", flat=True)) | set(repaid.values_list("run_id", flat=True))
    for run_id in sorted(run_ids):
        with transaction.atomic():
            run = SimulatorRun.objects.select_for_update().get(pk=run_id)
            trades = list(unresolved.filter(run_id=run_id).select_for_update())
            paid = pnl = Decimal(0)
            corrections = list(repaid.filter(run_id=run_id).select_for_update())
            for trade in corrections:
                difference = payout_usd(trade.legs, results) - trade.payout_usd
                trade.payout_usd += difference
                trade.resolution_disagreement = disagreement
                paid += difference
                pnl += difference
            SimulatorTrade.objects.bulk_update(corrections, ["payout_usd", "resolution_disagreement"])
            summary["corrected"] += len(corrections)
            for trade in trades:
                run.unhedged_exposure_usd -= trade.carried_mark_usd
                run.unhedged_contracts -= carried_contracts(trade.legs)
                trade.payout_usd = payout_usd(trade.legs, results)
                trade.resolved_at = now
                trade.resolution_disagreement = disagreement
                paid += trade.payout_usd
                pnl += trade.payout_usd - trade.cost_usd
            SimulatorTrade.objects.bulk_update(
                trades, ["payout_usd", "resolved_at", "resolution_disagreement"]
            )
            run.balance_usd += paid
            run.pnl_usd += pnl
            run.save(update_fields=["balance_usd", "pnl_usd", "unhedged_exposure_usd", "unhedged_contracts"])
            transaction.on_commit(partial(broadcast_run, run))
        summary["trades"] += len(trades)
        summary["runs"] += 1 if trades else 0
        summary["payout_usd"] += paid
        summary["pnl_usd"] += pnl
    logger.info(
        "event=pair_resolved opportunity_key=%s kalshi=%s polymarket=%s trades=%s runs=%s disagreement=%s",
        opportunity_key, kalshi, polymarket, summary["trades"], summary["runs"], disagreement,
    )  # fmt: skip
    return summary
