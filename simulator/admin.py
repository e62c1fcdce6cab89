"""Run review in the Django admin: runs with their trades and decisions, filters, a stop action
and a CSV export. Money, checks and everything the engine computed are read-only here: the
admin reviews runs, it does not rewrite their history."""

from __future__ import annotations

import csv

from django.contrib import admin, messages
from django.db import connection
from django.http import HttpResponse
from django.urls import reverse
from django.utils.html import format_html

from config.errors import DomainError
from simulator import services
from simulator.models import Decision, SimulatorRun, SimulatorTrade

INLINE_ROWS = 20
CSV_COLUMNS = [
    "id", "run_id", "intent_id", "opportunity_key", "direction", "requested_size", "matched_size",
    "fill_pct", "cost_usd", "fees_usd", "expected_pnl_usd", "net_edge_cents", "decided_at",
    "executed_at", "settled_at", "settlement_delay_s", "payout_usd", "resolved_at",
    "order_size", "reserved_usd", "arrival_outcome", "signal_edge_cents", "realised_edge_cents",
    "slippage_cents", "unwind_cost_usd", "carried_mark_usd",
]  # fmt: skip


class OpportunityKeyFilter(admin.SimpleListFilter):
    """Runs watching a key: those listing it, and those watching every key (an empty list)."""

    title = "opportunity key"
    parameter_name = "opportunity_key"

    def lookups(self, request, model_admin):
        keys = set()
        for run_keys in model_admin.get_queryset(request).values_list("opportunity_keys", flat=True)[:2000]:
            keys.update(run_keys or [])
        return [("__all__", "every key (empty list)"), *((key, key) for key in sorted(keys))]

    def queryset(self, request, queryset):
        key = self.value()
        if not key:
            return queryset
        if key == "__all__":
            return queryset.filter(opportunity_keys=[])
        if connection.features.supports_json_field_contains:
            return queryset.filter(opportunity_keys__contains=[key])
        # SQLite has no JSON containment: match the quoted key inside the stored list.
        return queryset.filter(opportunity_keys__icontains=f'"{key}"')


class VenueFilter(admin.SimpleListFilter):
    title = "venue"
    parameter_name = "venue"

    def lookups(self, request, model_admin):
        return [("kalshi", "kalshi"), ("polymarket", "polymarket")]

    def queryset(self, request, queryset):
        if self.value() not in ("kalshi", "polymarket"):
            return queryset
        # Both venues trade every pair today; the filter still reads the legs, so a one-venue
        # trade (or a third venue) filters right. Works on SQLite and PostgreSQL alike.
        return queryset.filter(legs__icontains=f'"venue": "{self.value()}"')


def _link(model: str, **params) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"{reverse(f'admin:simulator_{model}_changelist')}?{query}"


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        # Only the newest rows: a week-long run has thousands; the links show them all.
        newest = super().get_queryset(request).order_by("-id").values_list("id", flat=True)[:INLINE_ROWS]
        return super().get_queryset(request).filter(id__in=list(newest)).order_by("-id")


class TradeInline(ReadOnlyInline):
    model = SimulatorTrade
    fk_name = "run"
    fields = readonly_fields = (
        "opportunity_key",
        "matched_size",
        "cost_usd",
        "expected_pnl_usd",
        "executed_at",
    )
    verbose_name_plural = f"newest {INLINE_ROWS} trades"


class DecisionInline(ReadOnlyInline):
    model = Decision
    fields = readonly_fields = ("decision_source", "outcome", "reason_code", "reason", "created_at")
    verbose_name_plural = f"newest {INLINE_ROWS} decisions"


@admin.register(SimulatorRun)
class SimulatorRunAdmin(admin.ModelAdmin):
    list_display = (
        "id", "user", "label", "status", "balance_usd", "pnl_usd", "expected_pnl_usd",
        "trade_count", "decision_count", "started_at", "ends_at",
    )  # fmt: skip
    list_filter = ("status", "user", "started_at", OpportunityKeyFilter)
    search_fields = ("label",)
    date_hierarchy = "started_at"
    list_select_related = ("user",)
    ordering = ("-started_at", "-id")
    inlines = (TradeInline, DecisionInline)
    actions = ("stop_selected_runs", "export_trades_csv")
    readonly_fields = (
        "user", "status", "opportunity_keys", "starting_usd", "balance_usd", "pnl_usd",
        "expected_pnl_usd", "trade_count", "decision_count", "min_net_edge_cents", "max_leg_usd",
        "daily_cap_usd", "duration_minutes", "started_at", "ends_at", "stopped_at", "stop_reason",
        "seed", "sim_config", "liquidity_state", "traded_day", "traded_today_usd", "all_rows",
    )  # fmt: skip
    fields = ("label", "notes", *readonly_fields)

    def has_add_permission(self, request):
        return False  # runs start through the API, the page or `manage.py`, never half-made here

    @admin.display(description="all rows")
    def all_rows(self, run):
        return format_html(
            '<a href="{}">all {} trades</a> · <a href="{}">all {} decisions</a>',
            _link("simulatortrade", run__id__exact=run.pk),
            run.trade_count,
            _link("decision", run__id__exact=run.pk),
            run.decision_count,
        )

    @admin.action(description="Stop selected runs")
    def stop_selected_runs(self, request, queryset):
        stopped, refused = 0, []
        for run in queryset.select_related("user"):
            try:
                services.stop_run(user=run.user, run_id=run.pk, reason=f"stopped in admin by {request.user}")
                stopped += 1
            except DomainError as error:
                refused.append(f"run {run.pk}: {error.message}")
        if stopped:
            self.message_user(request, f"Stopped {stopped} run(s).", messages.SUCCESS)
        if refused:
            self.message_user(request, "Not stopped: " + "; ".join(refused), messages.WARNING)

    @admin.action(description="Export trades of selected runs (CSV)")
    def export_trades_csv(self, request, queryset):
        return trades_csv(SimulatorTrade.objects.filter(run__in=queryset), "simulator-trades.csv")


def trades_csv(trades, filename: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(CSV_COLUMNS)
    for row in trades.order_by("run_id", "decided_at", "id").values_list(*CSV_COLUMNS).iterator():
        writer.writerow(row)
    return response


@admin.register(SimulatorTrade)
class SimulatorTradeAdmin(admin.ModelAdmin):
    list_display = (
        "id", "run", "user", "opportunity_key", "direction", "arrival_outcome", "matched_size", "fill_pct",
        "cost_usd", "expected_pnl_usd", "slippage_cents", "payout_usd", "decided_at", "executed_at",
    )  # fmt: skip
    list_filter = ("run", "opportunity_key", "direction", "arrival_outcome", VenueFilter, "executed_at")
    search_fields = ("opportunity_key", "=run__id", "=intent__id")
    list_select_related = ("run", "user")
    ordering = ("-decided_at", "-id")
    actions = ("export_csv",)

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Export selected trades (CSV)")
    def export_csv(self, request, queryset):
        return trades_csv(queryset, "simulator-trades.csv")


@admin.register(Decision)
class DecisionAdmin(admin.ModelAdmin):
    list_display = (
        "id", "run", "decision_source", "outcome", "reason_code", "opportunity_key", "edge_cents",
        "created_at",
    )  # fmt: skip
    list_filter = ("run", "decision_source", "outcome", "reason_code", "opportunity_key", "created_at")
    search_fields = ("reason", "opportunity_key", "=run__id")
    list_select_related = ("run",)
    ordering = ("-created_at", "-id")

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False
