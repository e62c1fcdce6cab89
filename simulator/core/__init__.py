"""The simulator's pure core: checks, fill model, liquidity ledger, timing, the decision.

No Django, no I/O: the exchange is a callback, the clock and the random generator are
arguments. Import from here; the modules are the rooms behind it.
"""

from simulator.core.checks import CHECK_NAMES, NOT_RUN_DETAIL
from simulator.core.decide import FeeSchedules, SimConfig, decide, decide_span, estimated_cost_usd
from simulator.core.execution import (
    ARRIVAL_OUTCOMES,
    CompetitionConfig,
    ExecutionConfig,
    LegOrder,
)
from simulator.core.liquidity import LiquidityLedger
from simulator.core.timing import (
    EXECUTED,
    QUEUED,
    SETTLED,
    LatencyModel,
    SettlementDelayModel,
    TimingConfig,
    trade_status,
)
from simulator.core.types import (
    ELIGIBLE,
    SKIPPED,
    TRADED,
    Check,
    Decision,
    ExchangeValidation,
    Fill,
    Intent,
    IntentLeg,
    Keys,
    LegFill,
    LegValidation,
    RunLimits,
    RunState,
    TradeDraft,
)

__all__ = [
    "ARRIVAL_OUTCOMES",
    "CHECK_NAMES",
    "ELIGIBLE",
    "EXECUTED",
    "NOT_RUN_DETAIL",
    "QUEUED",
    "SETTLED",
    "SKIPPED",
    "TRADED",
    "Check",
    "CompetitionConfig",
    "Decision",
    "ExchangeValidation",
    "ExecutionConfig",
    "FeeSchedules",
    "Fill",
    "Intent",
    "IntentLeg",
    "Keys",
    "LatencyModel",
    "LegFill",
    "LegOrder",
    "LegValidation",
    "LiquidityLedger",
    "RunLimits",
    "RunState",
    "SettlementDelayModel",
    "SimConfig",
    "TimingConfig",
    "TradeDraft",
    "decide",
    "decide_span",
    "estimated_cost_usd",
    "trade_status",
]
