from django.contrib import admin

from config.number_fields import RuleFormField
from ingest.models import ExecutionIntent, MarketPair, SuccessSpan
from ingest.pairs import NUMBER_FIELDS


class IsOpenFilter(admin.SimpleListFilter):
    title = "open"
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return [("yes", "open"), ("no", "closed")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(ended_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(ended_at__isnull=False)
        return queryset


@admin.register(MarketPair)
class MarketPairAdmin(admin.ModelAdmin):
    list_display = (
        "opportunity_key",
        "title",
        "kalshi_ticker",
        "kalshi_close_time",
        "poly_close_time",
        "active",
    )
    list_filter = ("active",)
    search_fields = ("opportunity_key", "title", "kalshi_ticker", "poly_yes_token", "poly_no_token")
    readonly_fields = ("created_at", "updated_at")

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        rule = NUMBER_FIELDS.get(db_field.name)
        if rule is None:
            return super().formfield_for_dbfield(db_field, request, **kwargs)
        return RuleFormField(rule, initial=db_field.get_default(), help_text=f"Accepted: {rule.accepted()}.")


@admin.register(SuccessSpan)
class SuccessSpanAdmin(admin.ModelAdmin):
    list_display = (
        "span_key",
        "direction",
        "started_at",
        "ended_at",
        "peak_edge_cents",
        "mean_edge_cents",
        "max_size",
        "close_reason",
    )
    list_filter = (IsOpenFilter, "direction", "close_reason", "opportunity_key")
    search_fields = ("span_key", "opportunity_key")
    date_hierarchy = "started_at"
    list_select_related = ("pair",)
    # Written by ingest only: the admin is for looking.
    readonly_fields = [f.name for f in SuccessSpan._meta.fields]


@admin.register(ExecutionIntent)
class ExecutionIntentAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "user",
        "opportunity_key",
        "direction",
        "net_edge_cents",
        "size",
        "signal_at",
        "span",
    )
    list_filter = ("direction", "opportunity_key", "signal_at")
    search_fields = ("opportunity_key", "user__username")
    date_hierarchy = "signal_at"
    list_select_related = ("user", "span")
    readonly_fields = [f.name for f in ExecutionIntent._meta.fields]
