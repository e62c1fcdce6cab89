"""A run's execution settings as a person sets them (pure: no Django).

Six settings, each with a default, become the run's `SimConfig`: each venue's time in force,
the leg sequencing, what happens to an unhedged excess, and each venue's median order latency
(the rest of the latency model, its spread and bounds, stays the default). The start service,
the API's serializer, the page's form and `sim_start` all take their choices, ranges and
defaults from here; the run's JSON shows the snapshotted values back with `execution_json`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from config.numbers import WholeRule
from exchanges.books import KALSHI, POLYMARKET
from simulator.core import ExecutionConfig, SimConfig
from simulator.core.execution import ORDER_TYPES, SEQUENCINGS, UNHEDGED_POLICIES

DEFAULT_CONFIG = SimConfig()

CHOICES: Mapping[str, tuple[str, ...]] = {
    "kalshi_order_type": ORDER_TYPES[KALSHI],
    "polymarket_order_type": ORDER_TYPES[POLYMARKET],
    "sequencing": SEQUENCINGS,
    "unhedged": UNHEDGED_POLICIES,
}
LATENCY_VENUES: Mapping[str, str] = {"kalshi_latency_ms": KALSHI, "polymarket_latency_ms": POLYMARKET}
HELP: Mapping[str, str] = {
    "kalshi_order_type": "Kalshi time in force: ioc (immediate-or-cancel: take what is there at or "
    "below the limit, cancel the rest) or fok (fill-or-kill: all or nothing)",
    "polymarket_order_type": "Polymarket time in force: fak (fill-and-kill: take what is there at or "
    "below the limit, cancel the rest) or fok (fill-or-kill: all or nothing)",
    "sequencing": "together: both legs sent at once; kalshi_first or polymarket_first: that leg first, "
    "the other sent when its fill is known, sized to it",
    "unhedged": "when the legs fill differently, the excess is unwound (sold at that venue's bids one "
    "latency later, fees paid) or carried (held as an open position until the market resolves)",
    "kalshi_latency_ms": "median time for an order to reach Kalshi, in ms; each order's latency is "
    "drawn around it",
    "polymarket_latency_ms": "median time for an order to reach Polymarket, in ms; each order's "
    "latency is drawn around it",
}


def _latency_rule(venue: str) -> WholeRule:
    model = DEFAULT_CONFIG.timing.latency[venue]
    return WholeRule(model.min_ms, model.max_ms, unit="milliseconds")


LATENCY_RULES: Mapping[str, WholeRule] = {
    name: _latency_rule(venue) for name, venue in LATENCY_VENUES.items()
}
FIELDS = (*CHOICES, *LATENCY_VENUES)


def execution_json(config: SimConfig) -> dict[str, Any]:
    """The six settings of a run's config, as the run's `execution` object."""
    execution = config.execution
    return {
        "kalshi_order_type": execution.kalshi_order_type,
        "polymarket_order_type": execution.polymarket_order_type,
        "sequencing": execution.sequencing,
        "unhedged": execution.unhedged,
        **{name: config.timing.latency[venue].median_ms for name, venue in LATENCY_VENUES.items()},
    }


DEFAULTS: Mapping[str, Any] = execution_json(DEFAULT_CONFIG)


def clean_choice(name: str, raw: Any) -> str:
    """`raw` if it is one of the setting's choices; None: the default."""
    if raw is None:
        return DEFAULTS[name]
    if not isinstance(raw, str) or raw not in CHOICES[name]:
        raise ValueError(f"must be one of {', '.join(CHOICES[name])} (got {raw!r})")
    return raw


def clean_latency_ms(name: str, raw: Any) -> int:
    """A whole number of milliseconds within the venue's latency bounds; None or blank: the default."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return DEFAULTS[name]
    return LATENCY_RULES[name].parse(raw)


def sim_config(settings: Mapping[str, Any]) -> SimConfig:
    """The run's config from cleaned settings; ValueError if the models refuse them together."""
    execution = ExecutionConfig(**{name: settings[name] for name in CHOICES})
    latency = dict(DEFAULT_CONFIG.timing.latency)
    for name, venue in LATENCY_VENUES.items():
        latency[venue] = replace(latency[venue], median_ms=settings[name])
    return SimConfig(execution=execution, timing=replace(DEFAULT_CONFIG.timing, latency=latency))


def summary(execution: Mapping[str, Any]) -> str:
    """One short line for the commands' run tables, e.g. "K ioc 120ms, P fak 250ms, together, unwind"."""
    return (
        f"K {execution['kalshi_order_type']} {execution['kalshi_latency_ms']}ms, "
        f"P {execution['polymarket_order_type']} {execution['polymarket_latency_ms']}ms, "
        f"{execution['sequencing']}, {execution['unhedged']}"
    )
