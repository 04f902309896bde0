"""The customer's forms: what they can tell us and choose, each field checked before anything is written."""

import uuid

from django import forms
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.utils.translation import gettext, gettext_lazy, gettext_noop

from dunning_site.accounts.models import Channel
from dunning_site.collections.models import CustomerRequest
from dunning_site.lib.money import to_minor_units

# The customer's words (gettext_noop: marked for the .po files, translated where they are raised, in
# the customer's language); the constants stay the English the tests compare with.
ATTACHMENT_TOO_LARGE = gettext_noop("The file is too large: at most %(megabytes)s MB.")
ATTACHMENT_WRONG_TYPE = gettext_noop("Send a PDF, PNG or JPEG file (a scan or a photo of the document).")
# What a file starts with, by the type we keep it as: the name a customer's computer gives it proves nothing.
ATTACHMENT_SIGNATURES = {b"%PDF-": "pdf", b"\x89PNG\r\n\x1a\n": "png", b"\xff\xd8\xff": "jpg"}
LANGUAGES = [("en", "English"), ("de", "Deutsch"), ("fr", "Français"), ("es", "Español")]


class SomethingWrongForm(forms.Form):
    kind = forms.ChoiceField(
        choices=CustomerRequest.Kind.choices,
        widget=forms.RadioSelect,
        initial=CustomerRequest.Kind.QUESTION,
        label=gettext_lazy("What would you like to do?"),
    )
    reason = forms.ChoiceField(choices=CustomerRequest.Reason.choices, label=gettext_lazy("What is it about?"))
    text = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 5}), max_length=4000, label=gettext_lazy("Tell us more"), strip=True
    )
    attachment = forms.FileField(
        required=False,
        label=gettext_lazy("A document that shows it (optional)"),
        help_text=gettext_lazy("PDF, PNG or JPEG."),
        # What the phone's file picker offers; the content is checked all the same (clean_attachment).
        widget=forms.ClearableFileInput(attrs={"accept": ".pdf,.png,.jpg,.jpeg,application/pdf,image/png,image/jpeg"}),
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [
            (CustomerRequest.Kind.QUESTION, gettext_lazy("Ask a question: reminders go on meanwhile")),
            (
                CustomerRequest.Kind.DISPUTE,
                gettext_lazy("Dispute what we say you owe: we stop reminders until we have looked"),
            ),
        ]
        limit = settings.PORTAL_ATTACHMENT_MAX_BYTES // (1024 * 1024)
        # Built in the view, which the portal runs in the customer's language (portal.links.portal_page).
        self.fields["attachment"].help_text = gettext("PDF, PNG or JPEG, at most %(megabytes)s MB.") % {
            "megabytes": limit
        }

    def clean_attachment(self) -> UploadedFile | None:
        attachment = self.cleaned_data.get("attachment")
        if not attachment:
            return None
        if attachment.size > settings.PORTAL_ATTACHMENT_MAX_BYTES:
            raise forms.ValidationError(
                gettext(ATTACHMENT_TOO_LARGE) % {"megabytes": settings.PORTAL_ATTACHMENT_MAX_BYTES // (1024 * 1024)}
            )
        head = attachment.read(16)
        attachment.seek(0)
        kept_as = next((kind for magic, kind in ATTACHMENT_SIGNATURES.items() if head.startswith(magic)), None)
        if kept_as is None:
            raise forms.ValidationError(gettext(ATTACHMENT_WRONG_TYPE))
        attachment.original_name = attachment.name
        attachment.name = f"{uuid.uuid4().hex}.{kept_as}"  # never a name the customer chose, on our disk
        return attachment


class PreferencesForm(forms.Form):
    language = forms.ChoiceField(choices=LANGUAGES, label=gettext_lazy("Language for our messages and this page"))
    sms = forms.BooleanField(required=False, label=gettext_lazy("Text messages (SMS) about payments are welcome"))
    email = forms.BooleanField(required=False, label=gettext_lazy("Emails about payments are welcome"))

    CHANNELS = {"sms": Channel.SMS, "email": Channel.EMAIL}


AMOUNT_NOT_POSITIVE = gettext_noop("Enter an amount above zero.")


class PortalPromiseForm(forms.Form):
    """A promise to pay from the customer: a day within the policy's limit, at most what is owed."""

    promised_on = forms.DateField(label=gettext_lazy("I will pay by"), widget=forms.DateInput(attrs={"type": "date"}))
    amount = forms.DecimalField(label=gettext_lazy("Amount"), min_value=0, decimal_places=3, max_digits=18)
    reason = forms.CharField(
        required=False,
        max_length=500,
        label=gettext_lazy("Anything we should know? (optional)"),
        widget=forms.Textarea({"rows": 3}),
    )

    def __init__(self, *args, currency: str, latest, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.currency = currency
        self.fields["amount"].label = gettext("Amount (%(currency)s)") % {"currency": currency}
        self.fields["promised_on"].widget.attrs["max"] = latest.isoformat()

    def clean_amount(self) -> int:
        try:
            minor = to_minor_units(self.cleaned_data["amount"], self.currency)
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None
        if minor <= 0:
            raise forms.ValidationError(gettext(AMOUNT_NOT_POSITIVE))
        return minor
