"""The Profile page: thresholds, and write-only exchange secrets."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts import selectors, services
from accounts.forms import SECRET_FORMS, ProfileForm


def _render(request: HttpRequest, *, profile_form=None, secret_forms=None, status: int = 200):
    secret_forms = secret_forms or {}
    statuses = selectors.secret_statuses(user=request.user)
    exchanges = [
        {**s, "form": secret_forms.get(s["exchange"]) or SECRET_FORMS[s["exchange"]](prefix=s["exchange"])}
        for s in statuses
    ]
    profile = services.get_profile(user=request.user)
    context = {
        "profile_form": profile_form or ProfileForm(instance=profile),
        "exchanges": exchanges,
        "missing_thresholds": profile.missing_thresholds(),
    }
    return render(request, "accounts/profile.html", context, status=status)


@login_required
def profile_page(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = ProfileForm(request.POST, instance=services.get_profile(user=request.user))
        if form.is_valid():
            services.update_profile(user=request.user, **form.cleaned_data)
            messages.success(request, "Thresholds saved.")
            return redirect("profile")
        return _render(request, profile_form=form, status=400)
    return _render(request)


@login_required
@require_POST
def secret_replace(request: HttpRequest, exchange: str) -> HttpResponse:
    if exchange not in SECRET_FORMS:
        raise Http404("unknown exchange")
    form = SECRET_FORMS[exchange](request.POST, prefix=exchange)
    if form.is_valid():
        try:
            services.set_secret(user=request.user, exchange=exchange, **form.to_secret())
        except ValidationError as exc:
            for field, problems in exc.message_dict.items():
                name = field.removeprefix("extra.")
                target = name if name in form.fields else None
                for problem in problems:
                    form.add_error(target, f"{field} {problem}")
        else:
            messages.success(request, f"{exchange.capitalize()} secret saved.")
            return redirect("profile")
    return _render(request, secret_forms={exchange: form}, status=400)


@login_required
@require_POST
def secret_delete(request: HttpRequest, exchange: str) -> HttpResponse:
    if exchange not in SECRET_FORMS:
        raise Http404("unknown exchange")
    if services.delete_secret(user=request.user, exchange=exchange):
        messages.success(request, f"{exchange.capitalize()} secret deleted.")
    else:
        messages.info(request, f"No {exchange} secret was set.")
    return redirect("profile")
