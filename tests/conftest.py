import functools
import signal
import threading
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from rest_framework.test import APIClient


def pytest_configure(config) -> None:
    """Ctrl-C or SIGTERM interrupts the suite as Ctrl-C does in a terminal, whatever disposition
    it inherited (`./dev test` started with nohup or by a CI runner has SIGINT ignored): pytest
    raises KeyboardInterrupt once, and every fixture's teardown stops its servers and processes
    (demo, workers, daphne), undisturbed by a second signal."""
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt_once(signum, frame):
        for stop_signal in (signal.SIGINT, signal.SIGTERM):
            signal.signal(stop_signal, signal.SIG_IGN)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, interrupt_once)


@pytest.fixture(autouse=True)
def own_limit_counts(settings):
    """Each test counts login and API limits from zero: its own key prefix in the cache (Redis is
    shared by the suite's workers, so flushing it is not an option)."""
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}}


@functools.cache
def _rsa_private_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture
def rsa_private_pem() -> str:
    """An unencrypted RSA key in PEM form, generated once per test process (generation is slow)."""
    return _rsa_private_pem()


@pytest.fixture
def polymarket_private_key() -> str:
    return "0x" + "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"


@pytest.fixture
def user(db):
    from tests.accounts.factories import UserFactory

    return UserFactory()


@pytest.fixture
def other_user(db):
    from tests.accounts.factories import UserFactory

    return UserFactory()


@pytest.fixture
def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client
