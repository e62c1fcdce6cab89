"""Keep key material out of logs: a `logging.Filter` plus a registry of known secrets.

Masks, in a record's message, its args and its formatted traceback:
- PEM blocks (``-----BEGIN ... -----`` to ``-----END ... -----``, or to the end of the text when
  a log line carries only the start of one),
- 0x-prefixed 64-hex strings (an EVM private key),
- every string registered with `register_secret` (adapters register the key material they hold:
  a Kalshi PEM's body, a Polymarket key and its derived L2 secret and passphrase).

Attach it to handlers (``handler.addFilter(SecretRedactionFilter())``) so records from every
library logger pass through it; `install()` does that for the root logger's handlers.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "[REDACTED]"
# Shorter strings are too likely to occur by chance (a 4-digit nonce, "true") to mask safely.
MIN_SECRET_CHARS = 8

PEM_BLOCK = re.compile(r"-----BEGIN [A-Z0-9 ]+-----.*?(?:-----END [A-Z0-9 ]+-----|\Z)", re.DOTALL)
HEX_PRIVATE_KEY = re.compile(r"0x[0-9a-fA-F]{64}(?![0-9a-fA-F])")

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()


def register_secret(secret: str | bytes | None) -> None:
    """Add a secret to the process-wide registry; also registers a PEM's long base64 lines."""
    global _secrets
    if secret is None:
        return
    text = secret.decode("utf-8", "replace") if isinstance(secret, bytes) else str(secret)
    candidates = {text.strip()}
    if "-----BEGIN" in text:
        candidates |= {line.strip() for line in text.splitlines() if "-----" not in line}
    if text.startswith("0x"):
        candidates.add(text[2:])
    new = {c for c in candidates if len(c) >= MIN_SECRET_CHARS}
    if new - _secrets:
        with _lock:
            _secrets = _secrets | new


def registered_secret_count() -> int:
    return len(_secrets)


def redact(text: str) -> str:
    """Mask PEM blocks, hex private keys and registered secrets in `text`."""
    if not text:
        return text
    text = PEM_BLOCK.sub(MASK, text)
    text = HEX_PRIVATE_KEY.sub(MASK, text)
    # Longest first, so a secret that contains another registered one is masked whole.
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class SecretRedactionFilter(logging.Filter):
    """Rewrites each record's final message (msg % args) and traceback text, never drops it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a broken format string: redact the parts separately
            message = f"{record.msg} {record.args}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install(logger: logging.Logger | None = None) -> SecretRedactionFilter:
    """Attach one filter to every handler of `logger` (default: root) and to the logger itself."""
    target = logger or logging.getLogger()
    redaction_filter = SecretRedactionFilter()
    target.addFilter(redaction_filter)
    for handler in target.handlers:
        handler.addFilter(redaction_filter)
    return redaction_filter
