"""The simulator's HTTP API at the exact paths of the design (filled in by the API work)."""

urlpatterns: list = []
