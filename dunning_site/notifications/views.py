"""Public endpoints of notifications: unsubscribe links, Twilio's signed webhooks (delivery reports
and customer replies; an unsigned or wrongly signed request changes nothing), letter downloads."""

from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.core import signing
from django.db import transaction
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
)
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import pgettext_lazy
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST
from twilio.request_validator import RequestValidator

from dunning_site.accounts.customer_pages import customer_page, language_switch, refusal_page
from dunning_site.accounts.models import Channel, Consent, Customer
from dunning_site.accounts.services import consent_record, contact_mark_unusable
from dunning_site.notifications.models import Message
from dunning_site.notifications.services import inbound_sms_receive, message_tracking_record
from dunning_site.notifications.unsubscribe import read_unsubscribe_token

# The channel's name inside the pages' sentences ("Stop email reminders?"), in the page's language.
CHANNEL_WORDS = {
    Channel.EMAIL: pgettext_lazy("reminders by", "email"),
    Channel.SMS: pgettext_lazy("reminders by", "SMS"),
    Channel.LETTER: pgettext_lazy("reminders by", "post"),
    Channel.CALL: pgettext_lazy("reminders by", "phone"),
}


def _unsubscribe_customer(token: str) -> tuple[Customer, str] | None:
    try:
        customer_id, channel = read_unsubscribe_token(token)
        return Customer.objects.get(pk=customer_id), Channel(channel)
    except (signing.BadSignature, Customer.DoesNotExist, KeyError, ValueError):
        return None


def _unsubscribe_invalid(request: HttpRequest) -> HttpResponse:
    return refusal_page(request, "notifications/unsubscribe_invalid.html", {}, status=404)


@csrf_exempt  # RFC 8058: mail clients POST "List-Unsubscribe=One-Click" without a session or token
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET asks for confirmation (link scanners follow GETs); POST opts the customer out at once.
    Both speak the customer's language; the confirmation offers the language switcher."""
    found = _unsubscribe_customer(token)
    if found is None:
        return _unsubscribe_invalid(request)
    customer, channel = found
    context = {"channel": CHANNEL_WORDS[channel]}
    if request.method == "POST":
        consent_record(customer=customer, channel=channel, granted=False, source=Consent.Source.UNSUBSCRIBE)
        return customer_page(request, "notifications/unsubscribed.html", context, language=customer.language)
    switch_url = reverse("notifications:unsubscribe_language", args=[token])
    template = "notifications/unsubscribe_confirm.html"
    return customer_page(request, template, context, language=customer.language, switch_url=switch_url)


@require_POST
def unsubscribe_language(request: HttpRequest, token: str) -> HttpResponse:
    """The confirmation page's language switcher: stored on the customer, then back to the page."""
    found = _unsubscribe_customer(token)
    if found is None:
        return _unsubscribe_invalid(request)
    return language_switch(request, customer=found[0], back_to=reverse("notifications:unsubscribe", args=[token]))


@login_required
@permission_required("notifications.view_message", raise_exception=True)
def letter_download(request: HttpRequest, message_id: int) -> FileResponse:
    message = get_object_or_404(Message, pk=message_id, channel=Channel.LETTER)
    if not message.letter:
        raise Http404("This letter has not been printed yet.")
    return FileResponse(message.letter.open("rb"), as_attachment=True, filename=f"letter-{message.pk}.pdf")


# Twilio

SIGNATURE_HEADER = "X-Twilio-Signature"
INVALID_SIGNATURE = "Missing or invalid Twilio signature."
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

# Twilio's MessageStatus → tracking kind. The other statuses (queued, sent, …) add nothing
# to what delivery already recorded.
STATUS_KINDS = {"delivered": "delivered", "undelivered": "failed", "failed": "failed"}

# Error codes saying the number itself is dead, so trying it again is pointless. Not 30003
# (handset off or out of coverage) nor 30008 (unknown error): those pass.
DEAD_NUMBER_ERRORS = {
    "21211": "invalid phone number",
    "21614": "not a mobile number",
    "30005": "unknown or inactive number",
    "30006": "landline or unreachable carrier",
}
UNDELIVERABLE_NUMBER = "Twilio error %(code)s: %(description)s"
DELIVERY_FAILED = "Twilio reported %(status)s (error %(code)s)"

MESSAGE_SID_MISSING = "MessageSid missing or longer than 64 characters: each reply is recorded once under it."


def _signed_by_twilio(request: HttpRequest) -> bool:
    token = settings.TWILIO_AUTH_TOKEN
    signature = request.headers.get(SIGNATURE_HEADER, "")
    # Without a token anybody could compute a "valid" signature with the empty key.
    if not token or not signature:
        return False
    # The QueryDict, not .dict(): Twilio signs every value of a repeated field.
    return RequestValidator(token).validate(request.build_absolute_uri(), request.POST, signature)


@csrf_exempt
@require_POST
def twilio_status(request: HttpRequest) -> HttpResponse:
    if not _signed_by_twilio(request):
        return HttpResponseForbidden(INVALID_SIGNATURE)
    sid = request.POST.get("MessageSid", "")
    status = request.POST.get("MessageStatus", "")
    kind = STATUS_KINDS.get(status)
    if not sid or kind is None:
        return HttpResponse(status=204)
    message = Message.objects.select_related("customer").filter(provider_message_id=sid, channel=Channel.SMS).first()
    if message is None:
        # Not ours (another app on the account, or a message since deleted): Twilio would only retry.
        return HttpResponse(status=200)
    error_code = request.POST.get("ErrorCode", "")
    dead_number = DEAD_NUMBER_ERRORS.get(error_code) if kind == "failed" else None
    if dead_number:
        reason = UNDELIVERABLE_NUMBER % {"code": error_code, "description": dead_number}
    elif kind == "failed":
        reason = DELIVERY_FAILED % {"status": status, "code": error_code or "none"}
    else:
        reason = ""
    with transaction.atomic():
        recorded = message_tracking_record(
            message=message,
            kind=kind,
            at=timezone.now(),
            provider_event_id=f"twilio:{sid}:{status}",
            data={"provider": "twilio", "status": status, "error_code": error_code, "to": message.to_address},
            reason=reason,
        )
        # Only if the customer still has that number: staff may have corrected it since.
        if recorded and dead_number and message.customer.phone == message.to_address:
            contact_mark_unusable(customer=message.customer, channel=Channel.SMS, reason=reason)
    return HttpResponse(status=204)


@csrf_exempt
@require_POST
def twilio_inbound(request: HttpRequest) -> HttpResponse:
    """A customer's SMS to our number: a STOP or START changes their SMS consent, once per MessageSid
    (the signature proves Twilio sent it, not when: a replayed request must change nothing)."""
    if not _signed_by_twilio(request):
        return HttpResponseForbidden(INVALID_SIGNATURE)
    sid = request.POST.get("MessageSid", "")
    if not sid or len(sid) > 64:
        return HttpResponseBadRequest(MESSAGE_SID_MISSING)
    inbound_sms_receive(provider_id=sid, sender=request.POST.get("From", ""), body=request.POST.get("Body", ""))
    # Empty, repeated or not: Twilio sends the compliance reply to STOP and START itself.
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")
