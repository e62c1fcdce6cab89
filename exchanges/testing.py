"""Helpers for tests and demos: test keys and raw official clients pointed at the double.

The adapters (exchanges.kalshi / exchanges.polymarket) build their own clients; these build the
bare official clients, for tests of the double itself and for poking at it by hand.
"""

from __future__ import annotations

import functools

import kalshi_python_sync
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from eth_account import Account
from py_clob_client.client import ClobClient
from py_clob_client.clob_types import ApiCreds

from exchanges.double import KalshiMarket, PolymarketBook, Scenario

# Hardhat/Anvil's well-known account #0 key: public knowledge, holds nothing on Polygon.
TEST_POLYMARKET_PRIVATE_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
# Account #1, for "someone else" in tests.
OTHER_POLYMARKET_PRIVATE_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
POLYGON_CHAIN_ID = 137


@functools.cache
def kalshi_key_pair() -> tuple[str, str]:
    """A 2048-bit RSA key pair as (private PEM, public PEM); generated once per process."""
    return _rsa_key_pair()


def new_kalshi_key_pair() -> tuple[str, str]:
    """A fresh key pair, uncached (slow: ~50-100 ms). For "a different key" in tests."""
    return _rsa_key_pair()


def _rsa_key_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


def polymarket_private_key() -> str:
    """A deterministic hex private key for the Polymarket client."""
    return TEST_POLYMARKET_PRIVATE_KEY


def polymarket_address(private_key: str) -> str:
    """The checksummed address the client sends as POLY_ADDRESS."""
    return Account.from_key(private_key).address


def make_kalshi_client(
    host: str, api_key_id: str | None = None, private_pem: str | None = None, *, retries: int = 0
) -> kalshi_python_sync.KalshiClient:
    """The official client at `host` (e.g. `double.kalshi_host`); signed if a key is given.

    Timeouts are per call in this client: pass `_request_timeout=seconds` to each method.
    `retries=0` so a timeout or a dropped connection surfaces at once instead of being retried.
    """
    config = kalshi_python_sync.Configuration(host=host, retries=retries)
    if api_key_id and private_pem:
        config.api_key_id = api_key_id
        config.private_key_pem = private_pem
    return kalshi_python_sync.KalshiClient(config)


def make_polymarket_client(
    host: str, private_key: str | None = None, creds: ApiCreds | None = None
) -> ClobClient:
    """The official client at `host` (e.g. `double.polymarket_host`), L1 if a key is given,
    L2 if creds are given too. Its HTTP timeout is the module-global httpx client's."""
    if private_key is None:
        return ClobClient(host)
    return ClobClient(host, chain_id=POLYGON_CHAIN_ID, key=private_key, creds=creds)


def paired_markets_scenario(markets: int) -> tuple[Scenario, list[tuple[str, str, str]]]:
    """A double with `markets` Kalshi markets and, for each, a Polymarket YES and NO token with
    a book: the scenario and each market's (ticker, YES token, NO token), for many-pair tests and
    benchmarks. Books differ from market to market so a mixed-up book shows."""
    scenario = Scenario()
    instruments = []
    for n in range(markets):
        ticker, yes_token, no_token = f"KXPAIR-{n:05d}", f"{n + 1}1", f"{n + 1}2"
        cents = 10 + n % 80
        scenario.kalshi_markets[ticker] = KalshiMarket(
            ticker=ticker,
            yes_bids=[[f"0.{cents:02d}", "10"], [f"0.{cents - 1:02d}", "25"]],
            no_bids=[[f"0.{97 - cents:02d}", "12"]],
        )
        condition = f"0x{n:064x}"
        for token, bid in ((yes_token, cents), (no_token, 96 - cents)):
            scenario.polymarket_books[token] = PolymarketBook(
                token_id=token,
                market=condition,
                bids=[{"price": f"0.{bid:02d}", "size": "50"}],
                asks=[
                    {"price": f"0.{bid + 2:02d}", "size": "40"},
                    {"price": f"0.{bid + 3:02d}", "size": "9"},
                ],
            )
        instruments.append((ticker, yes_token, no_token))
    return scenario, instruments
