"""Backtests: a recording decided on its own clock for every point of a grid of settings.

A backtest is one detector pass over the recording (`ingest.detector_pass`, shared by every grid
point: books and spans do not depend on what a grid varies) and then, per grid point, a run of
kind `backtest` fed the intents its own thresholds give (an `IntentEmitter` of its own over the
pass's candidates) through the engine's decision and arrival tasks on the recording's clock
(`simulator.recorded_clock`): the same checks, fills and arrivals as a live run, with the
recording's books in place of the venues.

Grid points run one after another, or on `workers` processes (each is handed the pass once, so
none reads the recording again); each writes its own run's rows, and the results are gathered
from the database. The same recording, grid and seed give the same results whatever the
number of workers: every point's random draws are seeded by its run's seed and the intent's
content, never by row ids or timing.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import pickle
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import THRESHOLD_RULES, UserProfile
from config.errors import ConflictError, NotFoundError
from config.numbers import DecimalRule, NumberError, WholeRule
from exchanges.books import KALSHI, POLYMARKET
from ingest.columnar import fast_pass
from ingest.columnar_file import is_current
from ingest.detector_pass import DetectorPass, run_pass
from ingest.intents import IntentEmitter, UserThreshold
from ingest.models import ExecutionIntent
from ingest.pairs import ensure_market_pairs
from ingest.recording import RecordingError, pairs_of, read_recording
from ingest.recording_files import resolve_recording, validate_recording
from ingest.services import intent_row
from ingest.sources import updates_to_book_updates
from simulator import backtest_worker, recorded_clock, run_settings
from simulator.backtest_results import point_result
from simulator.core import SimConfig
from simulator.engine.expiry import end_run
from simulator.engine.recorded import BooksAsOf
from simulator.models import Backtest, SimulatorRun
from simulator.recorded_clock import RecordedClock
from simulator.tasks import arrive_due, decide_intent_task

logger = logging.getLogger(__name__)

SPAN_THRESHOLD_CENTS = Decimal(1)  # as `ingest_run`'s default
INTENT_COOLDOWN_MS = 10_000  # as `ingest_run`'s default
LATENCY_SCALE = DecimalRule(Decimal("0.1"), Decimal("10"), places=2)
STARTING_USD = DecimalRule(Decimal("1"), Decimal("100000000"), places=4, unit="USD")
SEED = WholeRule(0, 2**63 - 1)
END_REASON = "end of the recording"
HEARTBEAT_EVERY_DECISIONS = 200
INTENT_BATCH = 500
# Orders of a decision arrive within three latencies (first leg, second leg, unwind).
ARRIVAL_STEPS = 3
# When a profile leaves a threshold unset, a backtest still runs: these stand in (the settings).
FALLBACK_THRESHOLDS = {"min_net_edge_cents": "1", "max_leg_usd": "100", "daily_cap_usd": "1000000"}

ORDER_TYPE_BOTH = {"ioc": ("ioc", "fak"), "fok": ("fok", "fok")}


def _choice(name: str, choices: Sequence[str]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in choices:
            raise ValueError(f"must be one of {', '.join(choices)} (got {raw!r})")
        return raw

    parse.__name__ = name
    return parse


def _number(rule: DecimalRule | WholeRule) -> Callable[[str], str]:
    return lambda raw: str(rule.parse(raw))


# What a grid may vary, in the order its points are listed.
GRID_SETTINGS: Mapping[str, Callable[[str], str]] = {
    "min_net_edge_cents": _number(THRESHOLD_RULES["min_net_edge_cents"]),
    "max_leg_usd": _number(THRESHOLD_RULES["max_leg_usd"]),
    "daily_cap_usd": _number(THRESHOLD_RULES["daily_cap_usd"]),
    "order_type": _choice("order_type", tuple(ORDER_TYPE_BOTH)),
    **{name: _choice(name, choices) for name, choices in run_settings.CHOICES.items()},
    **{name: _number(rule) for name, rule in run_settings.LATENCY_RULES.items()},
    "latency_scale": _number(LATENCY_SCALE),
}
GRID_HELP = (
    "setting=value[,value...] for any of: "
    + ", ".join(GRID_SETTINGS)
    + " (order_type ioc|fok sets both venues: ioc = Kalshi ioc + Polymarket fak; latency_scale "
    "multiplies both venues' latency models)"
)


def grid_setting_help() -> dict[str, str]:
    """What each grid setting is and the values it takes (the page's grid form)."""
    thresholds = {
        "min_net_edge_cents": "the smallest net edge an intent needs",
        "max_leg_usd": "the most one leg may cost",
        "daily_cap_usd": "the most spent in a day",
    }
    described = {
        **{name: f"{text}: {THRESHOLD_RULES[name].accepted()}" for name, text in thresholds.items()},
        "order_type": "ioc or fok, for both venues (ioc: Kalshi ioc and Polymarket fak)",
        **{
            name: f"{' or '.join(choices)}: {run_settings.HELP[name]}"
            for name, choices in run_settings.CHOICES.items()
        },
        **{
            name: f"{run_settings.HELP[name]}: {rule.accepted()}"
            for name, rule in run_settings.LATENCY_RULES.items()
        },
        "latency_scale": f"multiplies both venues' latency models: {LATENCY_SCALE.accepted()}",
    }
    return {name: described[name] for name in GRID_SETTINGS}


def max_points() -> int:
    return settings.BACKTEST_MAX_POINTS


# --- the grid ------------------------------------------------------------------------------------


def parse_grid(raw: Mapping[str, Any] | Sequence[str] | None) -> dict[str, list[str]]:
    """The grid as {setting: [values]}, each value checked and written canonically. `raw` is a
    mapping (values a list or "a,b") or the command line's "setting=a,b" words. ValidationError
    names the setting at fault ("grid.<setting>")."""
    items: list[tuple[str, Any]] = []
    errors: dict[str, list[str]] = {}
    if raw is None:
        raw = {}
    if isinstance(raw, Mapping):
        items = list(raw.items())
    elif isinstance(raw, (list, tuple)):
        for word in raw:
            name, sep, values = str(word).partition("=")
            if not sep:
                raise ValidationError({"grid": [f"{word!r}: write setting=value[,value...]"]})
            items.append((name.strip(), values))
    else:
        raise ValidationError({"grid": ["must be an object of setting: [values]"]})
    grid: dict[str, list[str]] = {}
    for name, values in items:
        parse = GRID_SETTINGS.get(name)
        if parse is None:
            errors[f"grid.{name}"] = [f"unknown setting; one of {', '.join(GRID_SETTINGS)}"]
            continue
        if isinstance(values, str):
            values = [v.strip() for v in values.split(",")]
        if not isinstance(values, (list, tuple)) or not values:
            errors[f"grid.{name}"] = ["needs at least one value"]
            continue
        try:
            parsed = [parse(str(value)) for value in values]
        except (ValueError, NumberError) as error:
            errors[f"grid.{name}"] = [str(error)]
            continue
        if len(set(parsed)) != len(parsed):
            errors[f"grid.{name}"] = ["a value is listed twice"]
            continue
        grid[name] = parsed
    if "order_type" in grid and {"kalshi_order_type", "polymarket_order_type"} & set(grid):
        errors["grid.order_type"] = ["sets both venues' order types: vary it or theirs, not both"]
    if errors:
        raise ValidationError(errors)
    count = 1
    for values in grid.values():
        count *= len(values)
    if count > max_points():
        raise ValidationError({"grid": [f"has {count} points; at most {max_points()}"]})
    return {name: grid[name] for name in GRID_SETTINGS if name in grid}


def setting_names(names: Iterable[str]) -> list[str]:
    """Settings in GRID_SETTINGS order, whatever order a stored JSON object gives them back in
    (PostgreSQL's jsonb keeps its own)."""
    order = list(GRID_SETTINGS)
    return sorted(names, key=order.index)


def grid_points(grid: Mapping[str, list[str]]) -> list[dict[str, str]]:
    """Every combination, the first setting (GRID_SETTINGS order) varying slowest; one point for
    the empty grid."""
    names = setting_names(grid)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(grid[n] for n in names))]


def point_label(point: Mapping[str, str]) -> str:
    return " ".join(f"{name}={point[name]}" for name in setting_names(point)) or "defaults"


def point_config(point: Mapping[str, str]) -> SimConfig:
    """The run model of a grid point: the defaults with the point's execution settings."""
    chosen = {name: point.get(name) for name in (*run_settings.CHOICES, *run_settings.LATENCY_VENUES)}
    if "order_type" in point:
        chosen["kalshi_order_type"], chosen["polymarket_order_type"] = ORDER_TYPE_BOTH[point["order_type"]]
    cleaned = {
        **{name: run_settings.clean_choice(name, chosen[name]) for name in run_settings.CHOICES},
        **{name: run_settings.clean_latency_ms(name, chosen[name]) for name in run_settings.LATENCY_VENUES},
    }
    config = run_settings.sim_config(cleaned)
    scale = Decimal(point.get("latency_scale", "1"))
    if scale != 1:
        latency = {
            venue: replace(
                model,
                median_ms=max(1, int(model.median_ms * scale)),
                min_ms=max(1, int(model.min_ms * scale)),
                max_ms=max(1, int(model.max_ms * scale)),
            )
            for venue, model in config.timing.latency.items()
        }
        config = replace(config, timing=replace(config.timing, latency=latency))
    return config


def arrival_window_ms(points: Iterable[Mapping[str, str]]) -> int:
    """How long after a decision its orders can still arrive, over every point (their bounds)."""
    longest = max(
        max(point_config(point).timing.latency[venue].max_ms for venue in (KALSHI, POLYMARKET))
        for point in points
    )
    return ARRIVAL_STEPS * longest + 1_000


# --- creating and running ------------------------------------------------------------------------


def create_backtest(
    *,
    user,
    recording: Any,
    grid: Any = None,
    starting_usd: Any = "1000",
    seed: Any = None,
    workers: Any = 1,
    label: Any = "",
    allow_any_path: bool = False,
) -> Backtest:
    """A queued backtest, every input checked (ValidationError naming the field: nothing saved)."""
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, Any] = {}
    checks: dict[str, Callable[[], Any]] = {
        "recording": lambda: resolve_recording(
            str(recording), user_id=user.pk, allow_any_path=allow_any_path
        ),
        "grid": lambda: parse_grid(grid),
        "starting_usd": lambda: STARTING_USD.parse(starting_usd),
        "seed": lambda: secrets.randbits(63) if seed in (None, "") else SEED.parse(seed),
        "workers": lambda: WholeRule(1, settings.BACKTEST_MAX_WORKERS).parse(workers),
        "label": lambda: _label(label),
    }
    for name, check in checks.items():
        try:
            cleaned[name] = check()
        except ValidationError as error:
            errors.update(error.message_dict)
        except (ValueError, NumberError, RecordingError) as error:
            errors[name] = [str(error)]
    if errors:
        raise ValidationError(errors)
    points = grid_points(cleaned["grid"])
    return Backtest.objects.create(
        user=user,
        label=(cleaned["label"] or point_label({k: ",".join(v) for k, v in cleaned["grid"].items()}))[:120],
        recording=cleaned["recording"].name,
        grid=cleaned["grid"],
        seed=cleaned["seed"],
        starting_usd=cleaned["starting_usd"],
        workers=cleaned["workers"],
        points_total=len(points),
        progress={"phase": "queued"},
    )


def _label(raw: Any) -> str:
    text = "" if raw is None else str(raw).strip()
    if len(text) > 120:
        raise ValueError("must be at most 120 characters")
    return text


def own_backtest(*, user_id: int, backtest_id: int) -> Backtest:
    backtest = Backtest.objects.filter(pk=backtest_id, user_id=user_id).first()
    if backtest is None:
        raise NotFoundError(f"backtest {backtest_id} not found among your backtests")
    return backtest


def finished_backtest(*, user_id: int, backtest_id: int) -> Backtest:
    """The user's backtest once done; ConflictError says how far it is, or why it failed."""
    backtest = own_backtest(user_id=user_id, backtest_id=backtest_id)
    if backtest.status == Backtest.DONE:
        return backtest
    if backtest.status == Backtest.FAILED:
        raise ConflictError(f"backtest {backtest.pk} failed: {backtest.error}")
    progress = backtest.progress or {}
    if backtest.status == Backtest.QUEUED:
        where = "queued, not started yet"
    elif progress.get("phase") == "points":
        where = f"running: {backtest.points_done} of {backtest.points_total} grid points done"
    else:
        where = f"running: reading the recording, {progress.get('updates', 0)} updates so far"
    raise ConflictError(f"backtest {backtest.pk} is {where}; its results come when it is done")


def _progress(backtest_id: int, **fields: Any) -> None:
    Backtest.objects.filter(pk=backtest_id).update(heartbeat_at=timezone.now(), **fields)


def fail_stalled(
    *, now: datetime | None = None, stall_s: float | None = None, queued_too: bool = False
) -> int:
    """Running backtests that have not moved for `stall_s` (BACKTEST_STALL_S): their process
    ended (a worker killed, a server restarted). They end as failed, saying so, and their
    unfinished runs with them. `queued_too`: also those still queued (a process restarting
    with no broker: nothing will run them). Returns how many."""
    now = now or timezone.now()
    limit = now - timedelta(seconds=settings.BACKTEST_STALL_S if stall_s is None else stall_s)
    stalled = Backtest.objects.filter(status=Backtest.RUNNING, heartbeat_at__lt=limit)
    if queued_too:
        stalled = stalled | Backtest.objects.filter(status=Backtest.QUEUED, created_at__lt=limit)
    count = 0
    for backtest in stalled:
        _fail(backtest, "stopped moving: the process running it ended; start it again")
        count += 1
    return count


def run_backtest(
    backtest_id: int,
    *,
    workers: int | None = None,
    on_progress: Callable[[Backtest], None] | None = None,
    columnar: bool = False,
) -> Backtest:
    """Run a queued backtest to the end: the shared pass, then every grid point. A failure marks
    it failed with the reason (its finished points stay, its unfinished runs end as failed).
    The pass runs column-wise (`ingest.columnar`, the same results) when the recording's columnar
    cache is there and current, or when `columnar` asks for it to be made."""
    # Claimed once: a second delivery or caller finds it no longer queued and leaves it.
    claimed = Backtest.objects.filter(pk=backtest_id, status=Backtest.QUEUED).update(
        status=Backtest.RUNNING,
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
        progress={"phase": "pass", "updates": 0},
    )
    backtest = Backtest.objects.get(pk=backtest_id)
    if not claimed:
        logger.warning("event=backtest_not_queued backtest_id=%s status=%s", backtest_id, backtest.status)
        return backtest
    workers = workers or backtest.workers
    try:
        shared, run_ids = _prepare(backtest, on_progress, columnar)
        _run_points(backtest, shared, run_ids, workers, on_progress)
    except BaseException as error:  # recorded on the backtest, then raised to the caller
        said = isinstance(error, (RecordingError, OSError, ValueError, LookupError))
        _fail(backtest, str(error) if said else f"{type(error).__name__}: {error}")
        raise
    results = [point_result(run, shared.spans) for run in _runs(backtest)]
    # Only a backtest still running is done: one ended meanwhile (as stalled) keeps that verdict.
    Backtest.objects.filter(pk=backtest_id, status=Backtest.RUNNING).update(
        status=Backtest.DONE,
        finished_at=timezone.now(),
        results=results,
        progress={"phase": "done", "updates": shared.updates},
    )
    backtest.refresh_from_db()
    if on_progress is not None:
        on_progress(backtest)
    return backtest


def _fail(backtest: Backtest, reason: str) -> None:
    logger.warning("event=backtest_failed backtest_id=%s reason=%s", backtest.pk, reason)
    Backtest.objects.filter(pk=backtest.pk).update(
        status=Backtest.FAILED, error=reason[:2000], finished_at=timezone.now()
    )
    SimulatorRun.objects.filter(backtest=backtest, status=SimulatorRun.RUNNING).update(
        status=SimulatorRun.FAILED, stop_reason=f"backtest failed: {reason}"[:200], stopped_at=timezone.now()
    )


def _runs(backtest: Backtest) -> list[SimulatorRun]:
    return list(SimulatorRun.objects.filter(backtest=backtest).order_by("id"))


def checked_recording(path: Path) -> dict[str, Any]:
    """The recording's line-by-line check (`validate_recording`: RecordingError names the first
    bad line), once per version of the file: the summary is kept by path, size and mtime."""
    stat = path.stat()
    key = f"recording-checked:{path}:{stat.st_size}:{stat.st_mtime_ns}"
    summary = cache.get(key)
    if summary is None:
        summary = validate_recording(path).as_json()
        cache.set(key, summary, timeout=None)
    return summary


def _prepare(backtest: Backtest, on_progress, columnar: bool) -> tuple[DetectorPass, list[int]]:
    ref = resolve_recording(backtest.recording, user_id=backtest.user_id, allow_any_path=True)
    _progress(backtest.pk, progress={"phase": "checking", "updates": 0})
    summary = checked_recording(ref.path)  # minutes for a week's file: BACKTEST_STALL_S allows it
    _progress(backtest.pk, recording_summary=summary, progress={"phase": "pass", "updates": 0})
    header, updates = read_recording(ref.path)
    pairs = pairs_of(header)
    points = grid_points(backtest.grid)
    window_ms = arrival_window_ms(points)

    def progress(count: int) -> None:
        _progress(backtest.pk, progress={"phase": "pass", "updates": count})
        if on_progress is not None:
            backtest.progress = {"phase": "pass", "updates": count}
            on_progress(backtest)

    shared = None
    if columnar or is_current(ref.path):
        try:  # the same pass, column-wise from the cache beside the recording (made once)
            shared = fast_pass(
                ref.path, pairs, threshold_cents=SPAN_THRESHOLD_CENTS, window_ms=window_ms, progress=progress
            )
        except OSError as error:  # a folder it cannot write beside the recording
            logger.warning("event=backtest_columnar_unavailable backtest_id=%s why=%s", backtest.pk, error)
    if shared is None:
        shared = run_pass(
            updates_to_book_updates(updates, pairs),
            pairs,
            threshold_cents=SPAN_THRESHOLD_CENTS,
            window_ms=window_ms,
            progress=progress,
        )
    if shared.first_ms is None:
        raise RecordingError("the recording has no book of its pairs")
    ensure_market_pairs(specs=pairs)
    run_ids = _create_runs(backtest, points, shared)
    _progress(backtest.pk, progress={"phase": "points", "updates": shared.updates})
    return shared, run_ids


def _create_runs(backtest: Backtest, points: list[dict[str, str]], shared: DetectorPass) -> list[int]:
    """One run per point, created in grid order (ids follow the grid), all before any runs."""
    profile, _ = UserProfile.objects.get_or_create(user_id=backtest.user_id)
    started = _at(shared.first_ms)
    ends = _at(shared.last_ms) + timedelta(days=1)
    with transaction.atomic():
        SimulatorRun.objects.filter(backtest=backtest).delete()  # a re-run starts again
        runs = []
        for point in points:
            thresholds = {
                name: Decimal(point.get(name) or getattr(profile, name) or FALLBACK_THRESHOLDS[name])
                for name in ("min_net_edge_cents", "max_leg_usd", "daily_cap_usd")
            }
            runs.append(
                SimulatorRun.objects.create(
                    user_id=backtest.user_id,
                    kind=SimulatorRun.BACKTEST,
                    backtest=backtest,
                    grid_point=point,
                    status=SimulatorRun.RUNNING,
                    label=point_label(point)[:120],
                    starting_usd=backtest.starting_usd,
                    balance_usd=backtest.starting_usd,
                    seed=backtest.seed,
                    sim_config=point_config(point).as_json(),
                    started_at=started,
                    ends_at=ends,
                    traded_day=started.date(),
                    **thresholds,
                )
            )
    return [run.pk for run in runs]


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _run_points(backtest, shared: DetectorPass, run_ids: list[int], workers: int, on_progress) -> None:
    done = 0

    def finished() -> None:
        nonlocal done
        done += 1
        _progress(backtest.pk, points_done=done)
        if on_progress is not None:
            backtest.points_done = done
            backtest.progress = {"phase": "points", "updates": shared.updates}
            on_progress(backtest)

    # Worker processes share a database file or server, not a test's in-memory SQLite.
    in_memory = connection.vendor == "sqlite" and connection.is_in_memory_db()
    if workers <= 1 or len(run_ids) <= 1 or in_memory:
        for run_id in run_ids:
            run_point(run_id, shared)
            finished()
        return
    # Fresh processes, not forks: a fork copies the locks of this process's other threads (the
    # broadcast thread, a Redis or database client) as they stand, and a child can hang on one.
    # Each worker gets the pass once, pickled, and runs its points with its own connection.
    context = multiprocessing.get_context("spawn")
    payload = pickle.dumps(shared, protocol=pickle.HIGHEST_PROTOCOL)
    database = connection.settings_dict["NAME"]  # a test run's database is not the settings' one
    # A worker that dies (or cannot start) breaks the pool: the backtest fails, it never hangs.
    with ProcessPoolExecutor(
        max_workers=min(workers, len(run_ids)),
        mp_context=context,
        initializer=backtest_worker.start,
        initargs=(payload, database, f"{__name__}:run_point"),
    ) as pool:
        for future in as_completed([pool.submit(backtest_worker.run_point, run_id) for run_id in run_ids]):
            future.result()
            finished()


class _QuietOnRecordedClock(logging.Filter):
    """A backtest decides thousands of intents in seconds and its rows say what each did: the
    engine's per-decision info lines are left out on a thread running a recording's clock (other
    threads, a server's live runs, keep theirs; warnings always show)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or recorded_clock.current() is None


for _name in ("simulator.engine.pipeline", "simulator.engine.arrival"):
    logging.getLogger(_name).addFilter(_QuietOnRecordedClock())


def run_point(run_id: int, shared: DetectorPass) -> None:
    """One grid point: its intents from the shared candidates, decided and arrived through the
    engine's tasks on the recording's clock; the run ends where the recording does."""
    _run_point(run_id, shared)


def _run_point(run_id: int, shared: DetectorPass) -> None:
    run = SimulatorRun.objects.get(pk=run_id)
    user = UserThreshold(
        user_id=run.user_id,
        min_net_edge_cents=Decimal(run.min_net_edge_cents),
        max_leg_usd=Decimal(run.max_leg_usd),
        watched_keys=frozenset(run.opportunity_keys) if run.opportunity_keys else None,
    )
    pair_ids = dict(ensure_market_pairs(specs=sorted(shared.pairs, key=lambda pair: pair.opportunity_key)))
    # The emitter depends on the candidates alone, never on a decision: the point's intents are
    # written first, in bulk, in the order they will be decided.
    emitter = IntentEmitter(INTENT_COOLDOWN_MS)
    emitted = [
        (candidate, drafts)
        for candidate in shared.candidates
        if (
            drafts := emitter.emit(
                candidate.evaluation, [user], candidate.evaluation.at_ms, span_key=candidate.span_key
            )
        )
    ]
    rows = ExecutionIntent.objects.bulk_create(
        [
            intent_row(draft, pair_id=pair_ids[draft.opportunity_key], origin="backtest")
            for _, drafts in emitted
            for draft in drafts
        ],
        batch_size=INTENT_BATCH,
    )
    intent_ids = iter([row.pk for row in rows])
    clock = RecordedClock(books=BooksAsOf(shared.books.book_at), arrival=BooksAsOf(shared.books.book_at))
    decided, next_beat = 0, HEARTBEAT_EVERY_DECISIONS
    with recorded_clock.running(clock):
        for candidate, drafts in emitted:
            at_ms = candidate.evaluation.at_ms
            arrive_due(at_ms)
            clock.now_ms = at_ms
            clock.books = BooksAsOf(partial(shared.books.book_at, upto_line=candidate.line))
            for _ in drafts:
                decide_intent_task(run.pk, next(intent_ids))
            decided += len(drafts)
            if decided >= next_beat:
                next_beat += HEARTBEAT_EVERY_DECISIONS
                _progress(run.backtest_id)
        arrive_due(None)
    with transaction.atomic():
        run = SimulatorRun.objects.select_for_update().get(pk=run_id)
        if run.status == SimulatorRun.RUNNING:
            end_run(run, status=SimulatorRun.STOPPED, reason=END_REASON, now=_at(shared.last_ms))
