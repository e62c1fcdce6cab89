"""Request authentication, verified the way each venue does it.

Every check returns None when the request is good, or a short reason (for the 401 body) when it
is not. Reasons name what is wrong, never a key, signature or secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from eth_account import Account
from eth_account.messages import encode_typed_data

from .state import ExchangeState, PolymarketCreds

KALSHI_HEADERS = ("KALSHI-ACCESS-KEY", "KALSHI-ACCESS-TIMESTAMP", "KALSHI-ACCESS-SIGNATURE")
POLYMARKET_CHAIN_ID = 137
CLOB_AUTH_MESSAGE = "This message attests that I control the given wallet"
# Seeds the deterministic API creds, so derive returns what create returned, across restarts too.
_CREDS_SEED = b"exchange-double-polymarket-creds"


def kalshi_has_auth(headers: Mapping[str, str]) -> bool:
    return any(headers.get(name) for name in KALSHI_HEADERS)


def verify_kalshi(state: ExchangeState, headers: Mapping[str, str], method: str, path: str) -> str | None:
    """RSA-PSS (or Ed25519) over timestamp_ms + METHOD + path-without-query."""
    key_id, ts, sig_b64 = (headers.get(name) or "" for name in KALSHI_HEADERS)
    if not (key_id and ts and sig_b64):
        return "missing KALSHI-ACCESS-KEY, KALSHI-ACCESS-TIMESTAMP or KALSHI-ACCESS-SIGNATURE header"
    if not ts.isdigit():
        return "KALSHI-ACCESS-TIMESTAMP must be unix milliseconds"
    if abs(state.now_ms() - int(ts)) > state.auth_window_s * 1000:
        return "KALSHI-ACCESS-TIMESTAMP is outside the allowed window"
    account = state.kalshi_account(key_id)
    if account is None:
        return "unknown api key"
    try:
        signature = base64.b64decode(sig_b64, validate=True)
        public_key = serialization.load_pem_public_key(account.public_key_pem.encode())
        message = (ts + method.upper() + path).encode()
        if isinstance(public_key, RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
            public_key.verify(signature, message, pss, hashes.SHA256())
        elif isinstance(public_key, Ed25519PublicKey):
            public_key.verify(signature, message)
        else:
            return "registered key is neither RSA nor Ed25519"
    except (InvalidSignature, binascii.Error, ValueError):
        return "invalid signature"
    return None


def polymarket_creds_for(address: str, nonce: int) -> PolymarketCreds:
    """The API creds create/derive hand out: a pure function of (address, nonce)."""
    address = address.lower()
    digest = hmac.new(_CREDS_SEED, f"{address}:{nonce}".encode(), hashlib.sha256).digest()
    secret_bytes = hmac.new(_CREDS_SEED, digest + b"secret", hashlib.sha256).digest()
    return PolymarketCreds(
        address=address,
        api_key=str(uuid.UUID(bytes=digest[:16], version=4)),
        secret=base64.urlsafe_b64encode(secret_bytes).decode(),
        passphrase=hashlib.sha256(digest + b"passphrase").hexdigest(),
    )


def _fresh_seconds(state: ExchangeState, ts: str) -> bool:
    # Polymarket stamps whole seconds (truncated), so allow one extra second.
    return ts.isdigit() and abs(state.now_ms() / 1000 - int(ts)) <= state.auth_window_s + 1


def clob_auth_typed_data(address: str, timestamp: str, nonce: int, chain_id: int) -> dict:
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
            ],
            "ClobAuth": [
                {"name": "address", "type": "address"},
                {"name": "timestamp", "type": "string"},
                {"name": "nonce", "type": "uint256"},
                {"name": "message", "type": "string"},
            ],
        },
        "primaryType": "ClobAuth",
        "domain": {"name": "ClobAuthDomain", "version": "1", "chainId": chain_id},
        "message": {"address": address, "timestamp": timestamp, "nonce": nonce, "message": CLOB_AUTH_MESSAGE},
    }


def verify_polymarket_l1(state: ExchangeState, headers: Mapping[str, str]) -> tuple[str | None, int]:
    """EIP-712 ClobAuth signature by POLY_ADDRESS. Returns (failure reason or None, nonce)."""
    address = headers.get("POLY_ADDRESS") or ""
    signature = headers.get("POLY_SIGNATURE") or ""
    ts = headers.get("POLY_TIMESTAMP") or ""
    nonce_text = headers.get("POLY_NONCE") or "0"
    if not (address and signature and ts):
        return "Invalid L1 Request headers", 0
    if not nonce_text.isdigit():
        return "Invalid L1 Request headers", 0
    nonce = int(nonce_text)
    if not _fresh_seconds(state, ts):
        return "Invalid L1 Request headers: timestamp outside the allowed window", nonce
    try:
        typed = clob_auth_typed_data(address, ts, nonce, POLYMARKET_CHAIN_ID)
        signer = Account.recover_message(encode_typed_data(full_message=typed), signature=signature)
    except (ValueError, TypeError, binascii.Error):
        return "Invalid L1 Request headers: bad signature", nonce
    if signer.lower() != address.lower():
        return "Invalid L1 Request headers: signature does not match POLY_ADDRESS", nonce
    return None, nonce


def verify_polymarket_l2(
    state: ExchangeState, headers: Mapping[str, str], method: str, path: str, body: bytes
) -> str | None:
    """HMAC-SHA256 with the API secret over ts + METHOD + path-without-query (+ body)."""
    names = ("POLY_ADDRESS", "POLY_SIGNATURE", "POLY_TIMESTAMP", "POLY_API_KEY", "POLY_PASSPHRASE")
    address, signature, ts, api_key, passphrase = (headers.get(name) or "" for name in names)
    if not all((address, signature, ts, api_key, passphrase)):
        return "Unauthorized/Invalid api key"
    creds = state.polymarket_creds(api_key)
    if creds is None or not hmac.compare_digest(creds.passphrase, passphrase):
        return "Unauthorized/Invalid api key"
    if creds.address != address.lower():
        return "Unauthorized/Invalid api key"
    if not _fresh_seconds(state, ts):
        return "Unauthorized/Invalid api key: timestamp outside the allowed window"
    message = ts + method.upper() + path
    if body:
        message += body.decode("utf-8", "replace").replace("'", '"')
    expected = hmac.new(base64.urlsafe_b64decode(creds.secret), message.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(base64.urlsafe_b64encode(expected).decode(), signature):
        return "Unauthorized/Invalid api key"
    return None
