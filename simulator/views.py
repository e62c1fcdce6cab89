"""The /simulator/ page: server-rendered shell; the data comes from the JSON API and the socket."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from accounts import selectors as account_selectors
from accounts.services import get_profile
from ingest.models import MarketPair


@login_required
@ensure_csrf_cookie
def simulator_page(request: HttpRequest) -> HttpResponse:
    profile = get_profile(user=request.user)
    secrets = account_selectors.secret_statuses(user=request.user)
    context = {
        "missing_thresholds": profile.missing_thresholds(),
        "missing_secrets": [s["exchange"] for s in secrets if not s["set"]],
        "pair_count": MarketPair.objects.filter(active=True).count(),
    }
    return render(request, "simulator/page.html", context)
