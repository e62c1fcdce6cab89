"""/healthz (open: a load balancer or an orchestrator asks it) and /metrics (Prometheus)."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from config.throttles import client_address
from monitoring.health import health
from monitoring.metrics import registry


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    healthy, report = health()
    return JsonResponse(report, status=200 if healthy else 503)


def _from_loopback(request: HttpRequest) -> bool:
    try:
        return ipaddress.ip_address(client_address(request) or "").is_loopback
    except ValueError:
        return False


def _metrics_allowed(request: HttpRequest) -> bool:
    """METRICS_TOKEN set: that bearer token. Unset: requests from this machine. Staff sessions always."""
    if request.user.is_authenticated and request.user.is_staff:
        return True
    token = settings.METRICS_TOKEN
    if not token:
        return _from_loopback(request)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _metrics_allowed(request):
        response = HttpResponse(
            "metrics: a bearer token (METRICS_TOKEN) or a staff login is needed\n", status=401
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        response["Content-Type"] = "text/plain; charset=utf-8"
        return response
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
