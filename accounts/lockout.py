"""The answer to a login while django-axes holds the username or the client address locked out."""

from __future__ import annotations

import math

from axes.helpers import get_cool_off
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def locked_out_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """The login page's lockout notice, with the wait in words and in Retry-After (AXES_LOCKOUT_CALLABLE)."""
    cool_off_s = int(get_cool_off(request).total_seconds())
    response = render(
        request,
        "registration/locked_out.html",
        {"cool_off_minutes": math.ceil(cool_off_s / 60), "failure_limit": settings.AXES_FAILURE_LIMIT},
        status=settings.AXES_HTTP_RESPONSE_CODE,
    )
    response["Retry-After"] = str(cool_off_s)
    return response


def client_str(username: str | None, ip_address: str | None, user_agent: str, path_info: str, request) -> str:
    """How django-axes names a client in its log lines, key=value like the rest of the log."""
    return f"username={username!r} address={ip_address} path={path_info}"
