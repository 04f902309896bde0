"""Pre-dunning: one friendly "your card expires soon" email before any payment fails.

A card that expires is the most avoidable cause of a failed payment, and a customer asked to
update it before anything went wrong is a customer who never enters dunning. The warning goes
once per card (the idempotency key names the expiry date: a re-run, a second worker or tomorrow's
run creates nothing), to customers of a policy whose `pre_dunning_days` is not 0, and through the
outbox, so quiet hours, caps and opt-outs are decided at send time as for every other message.
"""

import datetime as dt
import logging

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Subquery
from django.utils import timezone

from dunning_site.accounts.models import Channel, Customer, Invoice
from dunning_site.collections.context import message_context
from dunning_site.collections.messaging import best_version, render_or_built_in
from dunning_site.collections.models import Case, Dispute, Policy
from dunning_site.collections.schedule import policy_for
from dunning_site.notifications.models import Message, MessageTemplate
from dunning_site.notifications.services import messages_create

logger = logging.getLogger(__name__)

TEMPLATE_KEY = "card-expiring"

# The words when no template with key "card-expiring" exists. Transactional and calm: nothing
# has gone wrong yet, and the message must not read like a reminder of a debt.
BUILT_IN_SUBJECT = "Your card on file expires soon"
BUILT_IN_BODY = (
    "Hello {{ customer_name }},\n\n"
    "The card we charge for your {{ sender_company }} account expires on {{ card_expires_on }}. "
    "To keep your payments going without interruption, please add your new card details here:\n"
    "{{ card_update_url }}\n\n"
    "If you have already updated your card, there is nothing else to do.\n\n"
    "{{ sender_name }}\n{{ sender_company }}"
)

BATCH_SIZE = 500
NO_CURRENCY = "EUR"


def idempotency_key(customer: Customer) -> str:
    """One warning per customer and card: a new card (a new expiry date) earns a new warning."""
    return f"predunning:{customer.pk}:{customer.card_expires_on.isoformat()}"


def predunning_run(*, now: dt.datetime | None = None) -> int:
    """Warn every customer whose card expires within their policy's `pre_dunning_days`. Returns
    the number of messages created (each is then delivered, deferred or cancelled by the contact
    rules). Safe to run as often as wanted and on several workers at once."""
    now = now or timezone.now()
    today = now.date()
    policies = list(Policy.objects.filter(is_active=True).select_related("contact_rules"))
    longest = max((policy.pre_dunning_days for policy in policies), default=0)
    if longest == 0:
        return 0
    templates = list(
        MessageTemplate.objects.filter(key__in=[TEMPLATE_KEY, f"{TEMPLATE_KEY}-{Channel.EMAIL}"], channel=Channel.EMAIL)
    )
    latest_currency = Invoice.objects.filter(customer=OuterRef("pk")).order_by("-issued_on", "-pk").values("currency")
    candidates = (
        Customer.objects.filter(
            # A card already expired is for dunning, not for a "soon" warning; the expiry day itself
            # still counts (the card works until the end of it).
            card_expires_on__gte=today,
            card_expires_on__lte=today + dt.timedelta(days=longest),
            do_not_contact=False,
            email_unusable_since__isnull=True,
        )
        .exclude(email="")
        # Something already failed for these: dunning's own messages carry the card-update link.
        .exclude(Exists(Case.objects.filter(customer=OuterRef("pk"), status__in=Case.ACTIVE_STATUSES)))
        # A customer disputing a charge with their bank is not written to (the hold rule).
        .exclude(Exists(Dispute.objects.filter(customer=OuterRef("pk"), closed_at__isnull=True)))
        .annotate(latest_currency=Subquery(latest_currency[:1]))
        .order_by("pk")
    )
    sent = 0
    batch: list[Customer] = []
    for customer in candidates.iterator(chunk_size=BATCH_SIZE):
        batch.append(customer)
        if len(batch) == BATCH_SIZE:
            sent += _warn_batch(batch, policies=policies, templates=templates, now=now)
            batch = []
    if batch:
        sent += _warn_batch(batch, policies=policies, templates=templates, now=now)
    return sent


def _warn_batch(
    customers: list[Customer], *, policies: list[Policy], templates: list[MessageTemplate], now: dt.datetime
) -> int:
    already = set(
        Message.objects.filter(idempotency_key__in=[idempotency_key(customer) for customer in customers]).values_list(
            "idempotency_key", flat=True
        )
    )
    sent = 0
    for customer in customers:
        if idempotency_key(customer) in already:
            continue
        policy = _policy_of(customer, policies)
        if policy is None or not policy.pre_dunning_days:
            continue
        if customer.card_expires_on > now.date() + dt.timedelta(days=policy.pre_dunning_days):
            continue
        message = _message_for(customer, policy=policy, templates=templates, now=now)
        try:
            # A savepoint per customer: a run racing this one may have written the same key first.
            with transaction.atomic():
                messages_create([message])
        except IntegrityError:
            continue
        sent += 1
    return sent


def _policy_of(customer: Customer, policies: list[Policy]) -> Policy | None:
    """The policy dunning would choose for this customer, with amount 0: nothing is owed yet. The
    currency is the latest invoice's; with no invoice yet, a policy for any currency may apply."""
    if customer.latest_currency:
        return policy_for(policies=policies, segment=customer.segment, currency=customer.latest_currency, amount=0)
    return next(
        (
            policy
            for policy in policies
            if policy_for(policies=[policy], segment=customer.segment, currency=policy.currency, amount=0)
        ),
        None,
    )


def _message_for(customer: Customer, *, policy: Policy, templates: list[MessageTemplate], now: dt.datetime) -> Message:
    # Nothing is owed, so the currency only formats a zero the built-in words never show; any
    # valid code will do when the customer has no invoice and the policy names none.
    currency = customer.latest_currency or policy.currency or NO_CURRENCY
    context = message_context(customer=customer, currency=currency, invoices=[], today=now.date())
    template = (
        best_version(templates, language=customer.language or "en", segment=customer.segment) if templates else None
    )
    template, subject, body, html = render_or_built_in(template, context, built_in=(BUILT_IN_SUBJECT, BUILT_IN_BODY))
    return Message(
        customer=customer,
        channel=Channel.EMAIL,
        template=template,
        to_address=customer.email,
        subject=subject,
        body=body,
        html_body=html,
        status=Message.Status.QUEUED,
        contact_rules=policy.contact_rules,
        idempotency_key=idempotency_key(customer),
        created_at=now,
        send_after=now,
    )
