"""Token authentication that stops answering an address after too many failed tokens."""

from __future__ import annotations

from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed, Throttled

from config.throttles import FailedTokenThrottle


class GuessLimitedTokenAuthentication(TokenAuthentication):
    """DRF's `Authorization: Token <key>`, refused with 429 + Retry-After once an address has sent
    the `failed_token` rate's worth of unknown, malformed or deactivated tokens. The check comes
    before the lookup, so during the wait even a right guess is not told apart from a wrong one."""

    def authenticate(self, request):
        words = get_authorization_header(request).split()
        if not words or words[0].lower() != self.keyword.lower().encode():
            return None
        failures = FailedTokenThrottle()
        if failures.is_blocked(request._request):
            raise Throttled(
                failures.wait(), detail="Too many failed token authentications from your address."
            )
        try:
            return super().authenticate(request)
        except AuthenticationFailed:
            failures.record_failure()
            raise
