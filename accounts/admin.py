from django.contrib import admin

from accounts.forms import threshold_form_field
from accounts.models import THRESHOLD_RULES, UserProfile, UserSecret


@admin.register(UserProfile)
class UserProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "min_net_edge_cents", "max_leg_usd", "daily_cap_usd", "updated_at"]
    search_fields = ["user__username"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name in THRESHOLD_RULES:
            return threshold_form_field(db_field)
        return super().formfield_for_dbfield(db_field, request, **kwargs)


@admin.register(UserSecret)
class UserSecretAdmin(admin.ModelAdmin):
    """Masked: the admin shows which secrets exist, never their contents, and cannot edit them."""

    list_display = ["user", "exchange", "key_status", "updated_at"]
    list_filter = ["exchange"]
    search_fields = ["user__username"]
    fields = ["user", "exchange", "key_status", "created_at", "updated_at"]
    readonly_fields = fields

    @admin.display(description="secret")
    def key_status(self, obj: UserSecret) -> str:
        return "set (hidden)" if obj.pk else "not set"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
