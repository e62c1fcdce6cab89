"""The /simulator/ page: server-rendered shell; the data comes from the JSON API and the socket."""

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from accounts import selectors as account_selectors
from accounts.services import get_profile
from ingest.models import MarketPair
from simulator import backtests, run_settings

# The start form's "Execution" fieldset: each run setting with its label, help and choices.
CHOICE_TEXT = {
    "ioc": "IOC: immediate-or-cancel",
    "fak": "FAK: fill-and-kill",
    "fok": "FOK: fill-or-kill",
    "together": "Both at once",
    "kalshi_first": "Kalshi first",
    "polymarket_first": "Polymarket first",
    "unwind": "Unwind: sell it back",
    "carry": "Carry: hold it",
}
SETTING_TEXT = {
    "kalshi_order_type": ("Kalshi order", "IOC takes what is there and cancels the rest; FOK all or nothing"),
    "kalshi_latency_ms": ("Kalshi latency, ms", "median time for an order to reach Kalshi"),
    "polymarket_order_type": (
        "Polymarket order",
        "FAK takes what is there and cancels the rest; FOK all or nothing",
    ),
    "polymarket_latency_ms": ("Polymarket latency, ms", "median time for an order to reach Polymarket"),
    "sequencing": ("Legs", "one venue first: the other is sent sized to its fill"),
    "unhedged": ("Unhedged excess", "when one leg fills more: sold at the bids, or held"),
}


def execution_fields() -> list[dict]:
    fields = []
    for name, (label, help_text) in SETTING_TEXT.items():
        field = {"name": name, "label": label, "help": help_text, "default": run_settings.DEFAULTS[name]}
        if name in run_settings.CHOICES:
            field["choices"] = [(value, CHOICE_TEXT[value]) for value in run_settings.CHOICES[name]]
        else:
            rule = run_settings.LATENCY_RULES[name]
            field["help"] += f" ({rule.low} to {rule.high})"
        fields.append(field)
    return fields


@login_required
@ensure_csrf_cookie
def simulator_page(request: HttpRequest) -> HttpResponse:
    profile = get_profile(user=request.user)
    secrets = account_selectors.secret_statuses(user=request.user)
    context = {
        "missing_thresholds": profile.missing_thresholds(),
        "missing_secrets": [s["exchange"] for s in secrets if not s["set"]],
        "pair_count": MarketPair.objects.filter(active=True).count(),
        "execution_fields": execution_fields(),
        "grid_fields": [{"name": name, "help": text} for name, text in backtests.grid_setting_help().items()],
        "upload_limit_mb": f"{settings.RECORDING_UPLOAD_MAX_BYTES / 1_000_000:g}",
    }
    return render(request, "simulator/page.html", context)
