"""Market pairs: fixture import/export (YAML or JSON) and conversion to the detector's PairSpec.

A fixture is a list of pairs (or `{"pairs": [...]}`), each a mapping with the MarketPair field
names::

    - opportunity_key: FED-DEC-CUT
      kalshi_ticker: KXFEDDECISION-26DEC-C25
      poly_yes_token: "7132...563"
      poly_no_token: "5211...426"
      title: Fed cuts in December          # optional from here on
      kalshi_title / poly_title / poly_condition_id
      kalshi_close_time / poly_close_time: 2026-12-10T19:00:00Z
      alignment_tolerance_s: 86400
      kalshi_fee_rate: "0.07"
      poly_fee_rate: "0"
      active: true

The whole file is validated before anything is written; every problem is reported as
`pair <n> (<key>): <field>: <what is wrong>`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from django.core.exceptions import ValidationError
from django.db import transaction

from config.numbers import DecimalRule, NumberError, WholeRule
from exchanges.books import KALSHI, POLYMARKET
from exchanges.fees import FeeSchedule, kalshi_taker_rate
from ingest.detector import PairSpec
from ingest.models import OPPORTUNITY_KEY_RULE, MarketPair

REQUIRED = ("opportunity_key", "kalshi_ticker", "poly_yes_token", "poly_no_token")
TEXT_FIELDS = {
    "opportunity_key": 64,
    "title": 300,
    "kalshi_ticker": 120,
    "kalshi_title": 300,
    "poly_condition_id": 120,
    "poly_yes_token": 120,
    "poly_no_token": 120,
    "poly_title": 300,
}
TIME_FIELDS = ("kalshi_close_time", "poly_close_time")
RATE_FIELDS = ("kalshi_fee_rate", "poly_fee_rate")
FEE_RATE = DecimalRule(Decimal("0"), Decimal("1"), places=4)  # the columns keep 4 places
NUMBER_FIELDS = {
    "alignment_tolerance_s": WholeRule(0, 31_536_000, unit="seconds"),  # up to a year
    "kalshi_fee_rate": FEE_RATE,
    "poly_fee_rate": FEE_RATE,
}
FIELDS = (*TEXT_FIELDS, *TIME_FIELDS, "alignment_tolerance_s", *RATE_FIELDS, "active")
EXPORT_ORDER = (
    "opportunity_key",
    "title",
    "kalshi_ticker",
    "kalshi_title",
    "kalshi_close_time",
    "poly_condition_id",
    "poly_yes_token",
    "poly_no_token",
    "poly_title",
    "poly_close_time",
    "alignment_tolerance_s",
    "kalshi_fee_rate",
    "poly_fee_rate",
    "active",
)


class PairFixtureError(ValueError):
    """A fixture that cannot be imported; `errors` lists every problem found."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class ImportResult:
    created: list[str]
    updated: list[str]


# --- reading and validating ------------------------------------------------------------------


def load_fixture(path: str | Path) -> list[Any]:
    """The list of pair mappings in a YAML or JSON file (by extension; .json is JSON)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PairFixtureError([f"{path}: cannot read: {error.strerror}"]) from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise PairFixtureError(
            [f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {error}"]
        ) from None
    if isinstance(data, Mapping) and "pairs" in data:
        data = data["pairs"]
    if data is None:
        data = []
    if not isinstance(data, list):
        raise PairFixtureError([f"{path}: expected a list of pairs (or a mapping with a 'pairs' list)"])
    return data


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    else:
        raise ValueError("expected an ISO 8601 date-time, e.g. 2026-12-10T19:00:00Z")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _clean_one(raw: Any) -> tuple[dict[str, Any], list[str]]:
    """(cleaned values, problems as 'field: message')."""
    if not isinstance(raw, Mapping):
        return {}, [f"expected a mapping of fields, got {type(raw).__name__}"]
    problems: list[str] = []
    unknown = sorted(set(raw) - set(FIELDS))
    problems += [f"{name}: unknown field (known: {', '.join(FIELDS)})" for name in unknown]
    cleaned: dict[str, Any] = {}
    for name in REQUIRED:
        value = raw.get(name)
        if value is None or str(value).strip() == "":
            problems.append(f"{name}: required")
    for name, max_length in TEXT_FIELDS.items():
        value = raw.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int):
            problems.append(f"{name}: expected text, got {type(value).__name__}")
            continue
        text = str(value).strip()
        if len(text) > max_length:
            problems.append(f"{name}: at most {max_length} characters, got {len(text)}")
        cleaned[name] = text
    key = cleaned.get("opportunity_key")
    if key:
        try:
            OPPORTUNITY_KEY_RULE(key)
        except ValidationError as error:
            problems.append(f"opportunity_key: {error.messages[0]}")
    for name in TIME_FIELDS:
        if raw.get(name) in (None, ""):
            continue
        try:
            cleaned[name] = _parse_time(raw[name])
        except ValueError as error:
            problems.append(f"{name}: {error if 'expected' in str(error) else 'not an ISO 8601 date-time'}")
    for name, rule in NUMBER_FIELDS.items():
        if raw.get(name) is None:
            continue
        try:
            cleaned[name] = rule.parse(raw[name])
        except NumberError as error:
            problems.append(f"{name}: {error}, got {raw[name]!r}")
    if "active" in raw:
        if not isinstance(raw["active"], bool):
            problems.append("active: expected true or false")
        else:
            cleaned["active"] = raw["active"]
    if cleaned.get("poly_yes_token") and cleaned.get("poly_yes_token") == cleaned.get("poly_no_token"):
        problems.append("poly_no_token: must differ from poly_yes_token")
    kalshi_close, poly_close = cleaned.get("kalshi_close_time"), cleaned.get("poly_close_time")
    tolerance_s = cleaned.get("alignment_tolerance_s", 86400)
    if kalshi_close and poly_close and abs((kalshi_close - poly_close).total_seconds()) > tolerance_s:
        gap_s = abs((kalshi_close - poly_close).total_seconds())
        problems.append(
            f"poly_close_time: {gap_s:.0f} s from kalshi_close_time, more than alignment_tolerance_s ({tolerance_s})"
        )
    if "kalshi_fee_rate" not in cleaned and cleaned.get("kalshi_ticker"):
        cleaned["kalshi_fee_rate"] = kalshi_taker_rate(cleaned["kalshi_ticker"])
    return cleaned, problems


def validate_fixture(rows: list[Any]) -> list[dict[str, Any]]:
    """Cleaned pairs, or PairFixtureError naming each bad pair and field."""
    errors: list[str] = []
    cleaned_rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(rows, start=1):
        cleaned, problems = _clean_one(raw)
        key = cleaned.get("opportunity_key") or "?"
        if key in seen:
            problems.append(f"opportunity_key: duplicate of pair {seen[key]}")
        elif key != "?":
            seen[key] = index
        errors += [f"pair {index} ({key}): {problem}" for problem in problems]
        cleaned_rows.append(cleaned)
    if errors:
        raise PairFixtureError(errors)
    return cleaned_rows


# --- import / export ---------------------------------------------------------------------------


def import_pairs(*, rows: list[Any]) -> ImportResult:
    """Create or update MarketPairs by opportunity key; all or nothing."""
    cleaned_rows = validate_fixture(rows)
    created, updated = [], []
    with transaction.atomic():
        for cleaned in cleaned_rows:
            key = cleaned.pop("opportunity_key")
            _, was_created = MarketPair.objects.update_or_create(opportunity_key=key, defaults=cleaned)
            (created if was_created else updated).append(key)
    return ImportResult(created, updated)


def import_pairs_file(*, path: str | Path) -> ImportResult:
    return import_pairs(rows=load_fixture(path))


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def pair_as_fixture(pair: MarketPair) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name in EXPORT_ORDER:
        value = getattr(pair, name)
        if name in TIME_FIELDS:
            value = _iso(value)
        elif name in RATE_FIELDS:
            value = str(value.normalize()) if value else "0"
        if value in (None, "") and name not in REQUIRED:
            continue
        row[name] = value
    return row


def export_pairs(*, keys: Iterable[str] | None = None, fmt: str = "yaml") -> str:
    pairs = MarketPair.objects.order_by("opportunity_key")
    if keys:
        pairs = pairs.filter(opportunity_key__in=list(keys))
    rows = [pair_as_fixture(pair) for pair in pairs]
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    return yaml.safe_dump(rows, sort_keys=False, allow_unicode=True)


# --- PairSpec <-> MarketPair -------------------------------------------------------------------


def spec_of(pair: MarketPair, *, max_skew_ms: int = 2000, max_age_ms: int = 10000) -> PairSpec:
    return PairSpec(
        opportunity_key=pair.opportunity_key,
        kalshi_ticker=pair.kalshi_ticker,
        poly_yes_token=pair.poly_yes_token,
        poly_no_token=pair.poly_no_token,
        kalshi_fees=FeeSchedule(KALSHI, Decimal(pair.kalshi_fee_rate)),
        poly_fees=FeeSchedule(POLYMARKET, Decimal(pair.poly_fee_rate)),
        max_skew_ms=max_skew_ms,
        max_age_ms=max_age_ms,
    )


def active_specs(
    *, keys: Iterable[str] | None = None, max_skew_ms: int = 2000, max_age_ms: int = 10000
) -> list[PairSpec]:
    pairs = MarketPair.objects.filter(active=True).order_by("opportunity_key")
    if keys:
        pairs = pairs.filter(opportunity_key__in=list(keys))
    return [spec_of(p, max_skew_ms=max_skew_ms, max_age_ms=max_age_ms) for p in pairs]


def ensure_market_pairs(*, specs: Iterable[PairSpec]) -> dict[str, int]:
    """opportunity key -> MarketPair id, creating the pairs a recording brings that the DB lacks."""
    specs = list(specs)
    ids = dict(
        MarketPair.objects.filter(opportunity_key__in=[s.opportunity_key for s in specs]).values_list(
            "opportunity_key", "id"
        )
    )
    for spec in specs:
        if spec.opportunity_key not in ids:
            pair, _ = MarketPair.objects.get_or_create(
                opportunity_key=spec.opportunity_key,
                defaults={
                    "kalshi_ticker": spec.kalshi_ticker,
                    "poly_yes_token": spec.poly_yes_token,
                    "poly_no_token": spec.poly_no_token,
                    "kalshi_fee_rate": spec.kalshi_fees.rate,
                    "poly_fee_rate": spec.poly_fees.rate,
                },
            )
            ids[spec.opportunity_key] = pair.pk
    return ids
