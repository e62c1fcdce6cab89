"""The floor under bench_api: for each measured endpoint, a plain Django view (no DRF) that runs
the same queries through the same selectors, builds the same dicts with the same presenters and
answers the same JSON bytes (orjson). Mounted only by bench/urls.py (settings `bench.settings`),
never by the product's URLs; tests/bench/test_api_floor.py checks the bytes are the same.

What the real endpoint does beyond this (DRF's request wrapping, content negotiation, permission
and throttle checks, the renderer) is what bench_api's ratio real / floor measures.
"""

from __future__ import annotations

from urllib.parse import urlencode

import orjson
from django.core.paginator import InvalidPage, Paginator
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token  # the table DRF's TokenAuthentication reads

from simulator import presenters, selectors
from simulator.api.views import RECENT_TRADES

PAGE_SIZE = 50
JSON = "application/json"


def _json(body: object, status: int = 200) -> HttpResponse:
    return HttpResponse(orjson.dumps(body), content_type=JSON, status=status)


def _user(request: HttpRequest):
    """The session's user, else the `Authorization: Token <key>` one, with the same query as
    DRF's TokenAuthentication; None when neither."""
    if request.user.is_authenticated:
        return request.user
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Token" or not key:
        return None
    token = Token.objects.select_related("user").filter(key=key).first()
    return token.user if token is not None and token.user.is_active else None


def status(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    if user is None:
        return _json({"detail": "Authentication credentials were not provided."}, 403)
    now = timezone.now()
    runs = selectors.running_runs(user_id=user.pk).order_by("-started_at", "-id")
    trades = selectors.latest_trades(user_id=user.pk)[:RECENT_TRADES]
    return _json(
        {
            "runs": [presenters.run_json(run) for run in runs],
            "recent_trades": [presenters.trade_json(trade, now) for trade in trades],
        }
    )


def _page_link(request: HttpRequest, path: str, number: int) -> str:
    """The real endpoint's link to page `number` (page 1 carries no `page` parameter), its other
    query parameters kept, sorted as DRF's pagination writes them."""
    query = {key: values for key, values in request.GET.lists() if key != "page"}
    if number > 1:
        query["page"] = [str(number)]
    encoded = urlencode(sorted(query.items()), doseq=True)
    return request.build_absolute_uri(path) + (f"?{encoded}" if encoded else "")


def run_trades(request: HttpRequest, run_id: int) -> HttpResponse:
    user = _user(request)
    if user is None:
        return _json({"detail": "Authentication credentials were not provided."}, 403)
    run = selectors.own_run(user_id=user.pk, run_id=run_id)
    if run is None:
        return _json({"detail": f"run {run_id} not found among your simulator runs"}, 404)
    now = timezone.now()
    try:
        page = Paginator(selectors.run_trades(run_id=run.pk), PAGE_SIZE).page(request.GET.get("page", 1))
    except InvalidPage:
        return _json({"detail": "Invalid page."}, 404)
    path = reverse("simulator-run-trades", kwargs={"run_id": run_id})
    return _json(
        {
            "count": page.paginator.count,
            "next": _page_link(request, path, page.next_page_number()) if page.has_next() else None,
            "previous": _page_link(request, path, page.previous_page_number())
            if page.has_previous()
            else None,
            "results": [presenters.trade_json(trade, now) for trade in page],
        }
    )
