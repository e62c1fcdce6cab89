"""The number rule (config.numbers) as DRF serializer fields and a Django form field.

DRF's DecimalField takes "1e3" and raises decimal.InvalidOperation (a 500) quantizing "1e999";
Django's form DecimalField takes "1e3" and "١٢٣". These parse with the rule instead and keep the
parent classes' OpenAPI schema (type, minimum, maximum)."""

from __future__ import annotations

from typing import Any

from django import forms
from rest_framework import serializers

from config.numbers import DecimalRule, NumberError, WholeRule


def _blank(data: Any) -> bool:
    return isinstance(data, str) and not data.strip()


class _RuleParsing:
    """Parses with `self.rule`; every refusal names the accepted range."""

    rule: DecimalRule | WholeRule

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        # An optional field left blank (an empty query parameter or form input) is not given;
        # null where null is not allowed gets the rule's message, with the range, like any bad value.
        if _blank(data) and not self.required:  # type: ignore[attr-defined]
            data = serializers.empty
        if data is None and not self.allow_null:  # type: ignore[attr-defined]
            return False, data
        return super().validate_empty_values(data)  # type: ignore[misc]

    def to_internal_value(self, data: Any) -> Any:
        try:
            return self.rule.parse(data)
        except NumberError as error:
            raise serializers.ValidationError(str(error)) from None


class RuleDecimalField(_RuleParsing, serializers.DecimalField):
    def __init__(self, rule: DecimalRule, **kwargs: Any) -> None:
        self.rule = rule
        super().__init__(
            max_digits=None, decimal_places=rule.places, min_value=rule.low, max_value=rule.high, **kwargs
        )


class RuleIntegerField(_RuleParsing, serializers.IntegerField):
    def __init__(self, rule: WholeRule, **kwargs: Any) -> None:
        self.rule = rule
        super().__init__(min_value=int(rule.low), max_value=int(rule.high), **kwargs)


class RuleFormField(forms.Field):
    """A form input parsed with a rule; blank is None when the field is not required."""

    def __init__(self, rule: DecimalRule | WholeRule, **kwargs: Any) -> None:
        self.rule = rule
        super().__init__(**kwargs)
        self.error_messages["required"] = f"is required (accepted: {rule.accepted()})"

    def to_python(self, value: Any) -> Any:
        if _blank(value) or value is None:
            return None
        try:
            return self.rule.parse(value)
        except NumberError as error:
            raise forms.ValidationError(str(error), code="invalid") from None

    def widget_attrs(self, widget: forms.Widget) -> dict[str, Any]:
        attrs = super().widget_attrs(widget)
        attrs["inputmode"] = "decimal" if self.rule.places else "numeric"
        return attrs
