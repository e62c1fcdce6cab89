"""The /simulator/ page."""

from django.urls import path

from simulator import views

urlpatterns = [path("", views.simulator_page, name="simulator-page")]
