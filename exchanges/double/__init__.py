"""The exchange double: a loopback Kalshi + Polymarket for the unmodified official clients.

from exchanges.double import ExchangeDouble, Scenario, Fault
with ExchangeDouble(Scenario.demo()) as double:
    ...  # point kalshi_python_sync at double.kalshi_host, py_clob_client at double.polymarket_host
"""

from .faults import Fault
from .server import ExchangeDouble
from .state import ExchangeState, KalshiAccount, KalshiMarket, PolymarketBook, Scenario

__all__ = [
    "ExchangeDouble",
    "ExchangeState",
    "Fault",
    "KalshiAccount",
    "KalshiMarket",
    "PolymarketBook",
    "Scenario",
]
