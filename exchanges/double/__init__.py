"""The exchange double: a loopback Kalshi + Polymarket for the unmodified official clients.

from exchanges.double import BookMove, ExchangeDouble, Scenario, Fault
with ExchangeDouble(Scenario.demo()) as double:
    double.add_book_move(BookMove(venue="kalshi", kind="thin", keep="0.3", after_ms=40))
    ...  # point kalshi_python_sync at double.kalshi_host, py_clob_client at double.polymarket_host,
    # websocket clients at double.kalshi_ws_url and double.polymarket_ws_url
"""

from .faults import Fault
from .feeds import StreamFault
from .moves import BookMove, demo_book_moves
from .server import ExchangeDouble
from .state import ExchangeState, KalshiAccount, KalshiMarket, PolymarketBook, Scenario

__all__ = [
    "BookMove",
    "ExchangeDouble",
    "ExchangeState",
    "Fault",
    "KalshiAccount",
    "KalshiMarket",
    "PolymarketBook",
    "Scenario",
    "StreamFault",
    "demo_book_moves",
]
