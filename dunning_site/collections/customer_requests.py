"""What customers tell us from the portal's "Something is wrong": a dispute or a question, with an
optional attachment. Both land on the collectors' worklist; a dispute holds every active case of the
customer by the hold rule (nothing charged, nothing sent) until a collector has looked and resumed it.
"""

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy

from dunning_site.accounts.models import Customer, User
from dunning_site.collections.case_core import case_pause
from dunning_site.collections.models import Case, CustomerRequest
from dunning_site.collections.timeline import case_event_record

ALREADY_ANSWERED = "This request was already answered."
TEXT_EMPTY = gettext_lazy("Tell us in a few words what is wrong.")  # shown next to the portal's field

# What a portal dispute holds a case with: holds.is_dispute reads the "Dispute:" prefix.
DISPUTE_HOLD = "Dispute: %(reason)s (from the portal)"


@transaction.atomic
def customer_request_record(
    *,
    customer: Customer,
    kind: str,
    reason: str,
    text: str,
    attachment: UploadedFile | None = None,
    client_address: str | None = None,
    user_agent: str = "",
    now: dt.datetime | None = None,
) -> CustomerRequest:
    """Record it, tell every active case's timeline, and for a dispute hold those cases."""
    now = now or timezone.now()
    text = text.strip()
    if not text:
        raise ValidationError({"text": TEXT_EMPTY})
    cases = list(
        Case.objects.select_for_update(of=("self",))
        .filter(customer=customer, status__in=Case.ACTIVE_STATUSES)
        .order_by("opened_at")
    )
    request = CustomerRequest(
        customer=customer,
        case=cases[0] if cases else None,
        kind=kind,
        reason=reason,
        text=text,
        received_at=now,
        client_address=client_address,
        user_agent=user_agent[:500],
    )
    if attachment is not None:
        # The name on the customer's side, for staff; the file is stored under one the portal chose.
        request.attachment_name = getattr(attachment, "original_name", attachment.name)[-255:]
        request.attachment.save(attachment.name, attachment, save=False)
    request.full_clean(exclude=["attachment"])
    request.save()
    # The portal records it in the customer's language; staff read the timeline and the hold in English.
    with translation.override(settings.LANGUAGE_CODE):
        reason_label = str(request.get_reason_display())
    for case in cases:
        case_event_record(
            case,
            "collections.customer_request.received",
            at=now,
            request_id=request.pk,
            kind=kind,
            reason=reason_label,
            text=text,
            attachment=request.attachment_name,
        )
        if kind == CustomerRequest.Kind.DISPUTE:
            hold = DISPUTE_HOLD % {"reason": reason_label}
            case_pause(case=case, until=None, reason=hold[:255], replace_hold=True)
    return request


@transaction.atomic
def customer_request_answer(*, request: CustomerRequest, user: User, now: dt.datetime | None = None) -> None:
    """A collector has dealt with it (replied, resumed or closed the case): off the worklist."""
    now = now or timezone.now()
    request = CustomerRequest.objects.select_for_update().get(pk=request.pk)
    if request.answered_at is not None:
        raise ValidationError(ALREADY_ANSWERED)
    request.answered_at, request.answered_by = now, user
    request.save(update_fields=["answered_at", "answered_by"])
    if request.case_id:
        case_event_record(
            request.case, "collections.customer_request.answered", user=user, at=now, request_id=request.pk
        )
