from django import forms


class CodeForm(forms.Form):
    otp_token = forms.RegexField(
        label="Code from your app",
        regex=r"^\s*\d{6}\s*$",
        error_messages={"invalid": "The code is the six digits your app shows."},
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
    )
