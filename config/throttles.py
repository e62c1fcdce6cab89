"""Who may ask how often: the client address every limit counts against, DRF's throttles for writes,
the report and anonymous requests, and the counter of failed token authentications.

Counts live in Django's cache (Redis when REDIS_URL is set, so every server process shares them).
Authenticated reads are not counted: the page polls, scripts poll, and a sliding window of
thousands of timestamps per request would cost more than the read it guards.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest
from redis.exceptions import RedisError
from rest_framework.permissions import SAFE_METHODS
from rest_framework.settings import api_settings
from rest_framework.throttling import (
    AnonRateThrottle,
    BaseThrottle,
    ScopedRateThrottle,
    SimpleRateThrottle,
    UserRateThrottle,
)

log = logging.getLogger(__name__)


def client_address(request: HttpRequest) -> str | None:
    """The address the login lockout and the throttles count against: REMOTE_ADDR, or behind
    DJANGO_TRUSTED_PROXY_COUNT proxies the address the outermost trusted proxy saw, read from the
    right of X-Forwarded-For (DRF's NUM_PROXIES rule, so both limits agree on who a client is)."""
    return BaseThrottle().get_ident(request)


class _CountedInTheCache:
    """Reads the rate per request (DRF binds the rates at import, so a changed setting would not
    apply), and lets a request through when the cache cannot be reached: a Redis outage must
    not take the API down with it."""

    def get_rate(self):
        self.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
        return super().get_rate()

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except RedisError as exc:
            log.warning("throttle=%s allowed=cache_unreachable error=%s", self.scope, type(exc).__name__)
            return True


class AnonThrottle(_CountedInTheCache, AnonRateThrottle):
    """Requests without a user to the few endpoints open to them (the OpenAPI schema, the docs)."""


class WriteThrottle(_CountedInTheCache, UserRateThrottle):
    """Per user: starting and stopping runs, profile and secret changes. Reads are not counted."""

    scope = "write"

    def get_cache_key(self, request, view):
        if request.method in SAFE_METHODS:
            return None
        return super().get_cache_key(request, view)


class ScopedThrottle(_CountedInTheCache, ScopedRateThrottle):
    """Per user, for views that name a `throttle_scope` (the report scans hours of spans)."""


class FailedTokenThrottle(_CountedInTheCache, SimpleRateThrottle):
    """Failed token authentications per client address. DRF runs throttles after authentication,
    so the token authentication asks this before it looks a token up and tells it each failure."""

    scope = "failed_token"

    def get_cache_key(self, request, view=None):
        return self.cache_format % {"scope": self.scope, "ident": client_address(request)}

    def is_blocked(self, request: HttpRequest) -> bool:
        """Whether this address used up its failures; loads the window that `record_failure` adds to."""
        self.key = None if self.rate is None else self.get_cache_key(request)
        if self.key is None:
            return False
        self.now = self.timer()
        try:
            self.history = self.cache.get(self.key, [])
        except RedisError as exc:
            log.warning("throttle=%s allowed=cache_unreachable error=%s", self.scope, type(exc).__name__)
            self.key = None
            return False
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        return len(self.history) >= self.num_requests

    def record_failure(self) -> None:
        if self.key is None:
            return
        try:
            self.throttle_success()  # DRF's name: it appends `now` to the window
        except RedisError as exc:
            log.warning("throttle=%s recorded=no error=%s", self.scope, type(exc).__name__)
