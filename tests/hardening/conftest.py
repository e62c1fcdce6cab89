"""Shared by the fault and abuse tests."""

import pytest


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Users are made by the dozen here; the production hasher's cost is not what is under test."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
