from django.urls import path

from accounts import api, views

urlpatterns = [
    path("accounts/profile/", views.profile_page, name="profile"),
    path("accounts/profile/secrets/<str:exchange>/replace", views.secret_replace, name="secret-replace"),
    path("accounts/profile/secrets/<str:exchange>/delete", views.secret_delete, name="secret-delete"),
    path("api/profile", api.ProfileApi.as_view(), name="api-profile"),
    path("api/secrets", api.SecretListApi.as_view(), name="api-secrets"),
    path("api/secrets/<str:exchange>", api.SecretApi.as_view(), name="api-secret"),
]
