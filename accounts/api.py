"""JSON endpoints for scripts: GET/PUT the profile, GET/PUT/DELETE a secret (write-only)."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.models import UserProfile
from accounts.secret_rules import EXCHANGES


class ProfileSerializer(serializers.ModelSerializer):
    class Meta:
        model = UserProfile
        fields = ["min_net_edge_cents", "max_leg_usd", "daily_cap_usd", "updated_at"]
        read_only_fields = ["updated_at"]


class SecretStatusSerializer(serializers.Serializer):
    exchange = serializers.CharField()
    set = serializers.BooleanField()
    updated_at = serializers.DateTimeField(allow_null=True)


class SecretInputSerializer(serializers.Serializer):
    api_key = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
    extra = serializers.DictField(required=False, default=dict)


def _raise_field_errors(exc: DjangoValidationError):
    raise serializers.ValidationError(exc.message_dict) from None


class ProfileApi(APIView):
    serializer_class = ProfileSerializer

    @extend_schema(responses=ProfileSerializer)
    def get(self, request):
        return Response(ProfileSerializer(services.get_profile(user=request.user)).data)

    @extend_schema(request=ProfileSerializer, responses=ProfileSerializer)
    def put(self, request):
        if not isinstance(request.data, dict):
            raise serializers.ValidationError({"non_field_errors": ["expected a JSON object"]})
        changes = {k: v for k, v in request.data.items() if k != "updated_at"}
        try:
            profile = services.update_profile(user=request.user, **changes)
        except DjangoValidationError as exc:
            _raise_field_errors(exc)
        return Response(ProfileSerializer(profile).data)

    patch = put


class SecretListApi(APIView):
    @extend_schema(responses=SecretStatusSerializer(many=True))
    def get(self, request):
        return Response(SecretStatusSerializer(selectors.secret_statuses(user=request.user), many=True).data)


class SecretApi(APIView):
    """A secret is never returned: GET says whether it is set, PUT replaces it, DELETE removes it."""

    def _status(self, request, exchange: str):
        if exchange not in EXCHANGES:
            raise NotFound(f"unknown exchange {exchange!r}: use one of {', '.join(EXCHANGES)}")
        statuses = {s["exchange"]: s for s in selectors.secret_statuses(user=request.user)}
        return SecretStatusSerializer(statuses[exchange]).data

    @extend_schema(responses=SecretStatusSerializer)
    def get(self, request, exchange: str):
        return Response(self._status(request, exchange))

    @extend_schema(request=SecretInputSerializer, responses=SecretStatusSerializer)
    def put(self, request, exchange: str):
        self._status(request, exchange)
        body = SecretInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            services.set_secret(user=request.user, exchange=exchange, **body.validated_data)
        except DjangoValidationError as exc:
            _raise_field_errors(exc)
        return Response(self._status(request, exchange))

    @extend_schema(responses={204: None})
    def delete(self, request, exchange: str):
        self._status(request, exchange)
        if not services.delete_secret(user=request.user, exchange=exchange):
            raise NotFound(f"no {exchange} secret is set")
        return Response(status=status.HTTP_204_NO_CONTENT)
