from django import forms
from django.utils.text import capfirst

from accounts.models import THRESHOLD_RULES, UserProfile
from config.number_fields import RuleFormField


def threshold_form_field(model_field, **kwargs) -> RuleFormField:
    """The model's label and help, parsed with the product's number rule (blank: not set)."""
    rule = THRESHOLD_RULES[model_field.name]
    return RuleFormField(
        rule,
        required=False,
        label=capfirst(model_field.verbose_name),
        help_text=f"{model_field.help_text} Accepted: {rule.accepted()}; empty: not set.",
    )


class ProfileForm(forms.ModelForm):
    class Meta:
        model = UserProfile
        fields = list(THRESHOLD_RULES)
        formfield_callback = threshold_form_field


class KalshiSecretForm(forms.Form):
    # Inputs start empty every time: a stored secret is never sent back to the browser.
    api_key = forms.CharField(label="API key id", max_length=200)
    private_key = forms.CharField(
        label="RSA private key (PEM)", required=False, widget=forms.Textarea(attrs={"rows": 4})
    )
    private_key_path = forms.CharField(label="...or path to the PEM on the server", required=False)
    use_demo = forms.BooleanField(label="Use Kalshi's demo environment", required=False)
    host = forms.CharField(label="Host override (URL)", required=False)

    def to_secret(self) -> dict:
        data = self.cleaned_data
        extra = {k: data[k] for k in ("private_key", "private_key_path", "host") if data.get(k)}
        if data.get("use_demo"):
            extra["use_demo"] = True
        return {"api_key": data["api_key"], "extra": extra}


class PolymarketSecretForm(forms.Form):
    private_key = forms.CharField(label="Wallet private key (hex)", widget=forms.PasswordInput())
    funder = forms.CharField(label="Funder address (optional)", required=False)
    host = forms.CharField(label="Host override (URL)", required=False)

    def to_secret(self) -> dict:
        data = self.cleaned_data
        extra = {k: data[k] for k in ("private_key", "funder", "host") if data.get(k)}
        return {"api_key": "", "extra": extra}


SECRET_FORMS = {"kalshi": KalshiSecretForm, "polymarket": PolymarketSecretForm}
