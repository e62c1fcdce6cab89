"""The /simulator/ page (filled in by the page work)."""

urlpatterns: list = []
