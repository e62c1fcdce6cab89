"""Key material never reaches log output."""

import io
import logging

import pytest

from exchanges.kalshi import kalshi_credentials_from_secret
from exchanges.polymarket import polymarket_credentials_from_secret
from exchanges.redaction import MASK, SecretRedactionFilter, install, redact, register_secret


@pytest.fixture
def captured_logger():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(SecretRedactionFilter())
    logger = logging.getLogger("tests.redaction")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger, stream
    logger.handlers = []


def test_a_pem_key_logged_as_an_argument_is_masked(captured_logger, rsa_private_pem):
    logger, stream = captured_logger
    logger.info("loaded key %s for user=%s", rsa_private_pem, 7)
    output = stream.getvalue()
    assert "BEGIN PRIVATE KEY" not in output
    assert rsa_private_pem.splitlines()[1] not in output
    assert MASK in output and "user=7" in output


def test_a_hex_private_key_in_the_message_is_masked(captured_logger, polymarket_private_key):
    logger, stream = captured_logger
    logger.warning(f"signing with {polymarket_private_key} now")
    output = stream.getvalue()
    assert polymarket_private_key not in output
    assert polymarket_private_key[2:] not in output
    assert output.strip() == f"WARNING signing with {MASK} now"


def test_a_registered_secret_is_masked_wherever_it_appears(captured_logger):
    logger, stream = captured_logger
    register_secret("l2-passphrase-9f8e7d")
    logger.error("auth failed: %r", {"passphrase": "l2-passphrase-9f8e7d"})
    assert "l2-passphrase-9f8e7d" not in stream.getvalue()


def test_secrets_in_a_traceback_are_masked(captured_logger, polymarket_private_key):
    logger, stream = captured_logger
    try:
        raise ValueError(f"bad key {polymarket_private_key}")
    except ValueError:
        logger.exception("signer failed")
    output = stream.getvalue()
    assert "ValueError" in output and polymarket_private_key not in output


def test_pem_body_lines_alone_are_masked_once_the_credentials_are_built(captured_logger, rsa_private_pem):
    kalshi_credentials_from_secret({"api_key": "key-id", "extra": {"private_key": rsa_private_pem}})
    body_line = rsa_private_pem.splitlines()[3]
    logger, stream = captured_logger
    logger.debug("fragment: %s", body_line)
    assert body_line not in stream.getvalue()


def test_polymarket_key_without_0x_prefix_is_masked_once_registered(captured_logger):
    bare = "ab" * 32
    polymarket_credentials_from_secret({"extra": {"private_key": "0x" + bare}})
    logger, stream = captured_logger
    logger.info("key=%s", bare)
    assert bare not in stream.getvalue()


def test_a_truncated_pem_is_masked_to_the_end():
    assert redact("oops -----BEGIN RSA PRIVATE KEY-----\nMIIEow") == f"oops {MASK}"


def test_ordinary_text_and_short_values_are_left_alone():
    register_secret("true")  # too short to mask safely: ignored
    assert redact("ticker=KXHIGHNY-25NOV24-T50 ok=true price=0.42") == (
        "ticker=KXHIGHNY-25NOV24-T50 ok=true price=0.42"
    )
    assert redact("0x" + "ab" * 20) == "0x" + "ab" * 20  # an address, not a key


def test_install_filters_every_handler_of_a_logger(polymarket_private_key):
    stream = io.StringIO()
    logger = logging.getLogger("tests.redaction.install")
    logger.handlers = [logging.StreamHandler(stream)]
    logger.propagate = False
    install(logger)
    logger.warning("key %s", polymarket_private_key)
    assert polymarket_private_key not in stream.getvalue()
    logger.handlers = []
