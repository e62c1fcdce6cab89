"""Validation of exchange secrets (pure: no Django). Errors are keyed by the field at fault.

Kalshi: `api_key` plus `extra.private_key` (RSA PEM text) or `extra.private_key_path` (a file
holding one); optional `extra.use_demo` (bool), `extra.host` (http(s) URL).
Polymarket: `extra.private_key` (32-byte hex, optional 0x); optional `extra.funder` (0x address),
`extra.host`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

KALSHI = "kalshi"
POLYMARKET = "polymarket"
EXCHANGES = (KALSHI, POLYMARKET)

ALLOWED_EXTRA = {
    KALSHI: {"private_key", "private_key_path", "use_demo", "host"},
    POLYMARKET: {"private_key", "funder", "host"},
}
MAX_API_KEY_LEN = 200
MAX_PEM_LEN = 20_000
HEX_KEY = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")
ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")

Errors = dict[str, list[str]]


def _add(errors: Errors, field: str, message: str) -> None:
    errors.setdefault(field, []).append(message)


def rsa_pem_error(pem: str) -> str | None:
    """None if `pem` is an unencrypted RSA private key in PEM form, else why not."""
    if len(pem) > MAX_PEM_LEN:
        return "is too long to be an RSA private key"
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except TypeError:
        return "is encrypted with a passphrase; give the unencrypted PEM"
    except (ValueError, UnicodeEncodeError):
        return "is not a PEM private key (expected -----BEGIN PRIVATE KEY----- or BEGIN RSA PRIVATE KEY)"
    if not isinstance(key, RSAPrivateKey):
        return "must be an RSA private key"
    return None


def url_error(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return "must be an http(s) URL"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "must be an http(s) URL such as https://host/path"
    return None


def validate_secret(exchange: str, api_key: Any, extra: Any) -> Errors:
    """Every problem with a secret, by field (`api_key`, `extra.private_key`, ...)."""
    errors: Errors = {}
    if exchange not in EXCHANGES:
        _add(errors, "exchange", f"must be one of {', '.join(EXCHANGES)}")
        return errors
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        _add(errors, "extra", "must be a JSON object")
        return errors
    for unknown in sorted(set(extra) - ALLOWED_EXTRA[exchange]):
        _add(errors, f"extra.{unknown}", f"is not a {exchange} setting")
    if api_key is not None and not isinstance(api_key, str):
        _add(errors, "api_key", "must be a string")
        api_key = ""
    api_key = (api_key or "").strip()
    if len(api_key) > MAX_API_KEY_LEN:
        _add(errors, "api_key", f"must be at most {MAX_API_KEY_LEN} characters")
    if "host" in extra and (problem := url_error(extra["host"])):
        _add(errors, "extra.host", problem)
    if exchange == KALSHI:
        _validate_kalshi(errors, api_key, extra)
    else:
        _validate_polymarket(errors, extra)
    return errors


def _validate_kalshi(errors: Errors, api_key: str, extra: dict) -> None:
    if not api_key:
        _add(errors, "api_key", "is required for Kalshi (the API key id)")
    pem, path = extra.get("private_key"), extra.get("private_key_path")
    if not pem and not path:
        _add(errors, "extra.private_key", "is required for Kalshi (or give extra.private_key_path)")
    if pem:
        if not isinstance(pem, str):
            _add(errors, "extra.private_key", "must be PEM text")
        elif problem := rsa_pem_error(pem):
            _add(errors, "extra.private_key", problem)
    if path:
        if not isinstance(path, str):
            _add(errors, "extra.private_key_path", "must be a file path")
        elif not Path(path).is_file():
            _add(errors, "extra.private_key_path", "does not name a readable file on the server")
        else:
            try:
                text = Path(path).read_text()
            except (OSError, UnicodeDecodeError):
                _add(errors, "extra.private_key_path", "cannot be read as text")
            else:
                if problem := rsa_pem_error(text):
                    _add(errors, "extra.private_key_path", f"file {problem}")
    if "use_demo" in extra and not isinstance(extra["use_demo"], bool):
        _add(errors, "extra.use_demo", "must be true or false")


def _validate_polymarket(errors: Errors, extra: dict) -> None:
    key = extra.get("private_key")
    if not key:
        _add(errors, "extra.private_key", "is required for Polymarket (the wallet's hex private key)")
    elif not isinstance(key, str) or not HEX_KEY.match(key.strip()):
        _add(errors, "extra.private_key", "must be a 32-byte hex key (64 hex digits, optional 0x)")
    if "funder" in extra and extra["funder"] not in (None, ""):
        funder = extra["funder"]
        if not isinstance(funder, str) or not ADDRESS.match(funder):
            _add(errors, "extra.funder", "must be a 0x-prefixed 40-hex-digit address")
