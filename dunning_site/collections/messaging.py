"""Composing a case's messages: which channel, which template, which words.

Used by the tick for due steps (in bulk, with everything loaded up front) and by collectors for
ad-hoc messages. The contact rules are not decided here but at send time, by notifications.
"""

import datetime as dt
import logging
import zoneinfo

from django.template import TemplateSyntaxError

from dunning_site.accounts.models import Channel, Customer, User
from dunning_site.collections.context import message_context
from dunning_site.collections.models import Case, Step
from dunning_site.notifications.models import Message, MessageTemplate
from dunning_site.notifications.rendering import one_line, render_message, render_text

logger = logging.getLogger(__name__)

# When a step's channel cannot be used (bounced address, no consent), the next one that can.
FALLBACK_ORDER = (Channel.EMAIL, Channel.SMS, Channel.CALL)

# The line that asks for what would fix the last failed charge (collections.context: `action`):
# a new card, the bank's confirmation, or simply paying.
CALL_TO_ACTION = (
    "{% if action == 'update_card' %}Your card on file can no longer be charged. Please add a new card here: "
    "{{ action_url }}{% elif action == 'confirm_payment' %}Your bank asks you to confirm the payment here: "
    "{{ action_url }}{% else %}Pay here: {{ action_url }}{% endif %}"
)
SMS_CALL_TO_ACTION = (
    "{% if action == 'update_card' %}Please add a new card: {% elif action == 'confirm_payment' %}"
    "Please confirm the payment: {% else %}Please pay here: {% endif %}{{ action_url }}"
)

# Words for a channel the policy has no template for (a fallback SMS or call script). Discreet by
# design: an SMS may reach a number that changed hands. A discreet SMS has no link (see
# collections.context), so it sends the customer to their email or to us instead.
BUILT_IN = {
    Channel.SMS: (
        "",
        "{{ sender_company }}: a payment on your account is overdue. {% if action_url %}"
        + SMS_CALL_TO_ACTION
        + "{% else %}Please see our email{% if sender_phone %} or call us on {{ sender_phone }}{% endif %}.{% endif %}",
    ),
    Channel.CALL: (
        "Call {{ company_name }} about {{ total_overdue }} overdue",
        "Call {{ customer_name }} ({{ company_name }}) about {{ total_overdue }}, {{ days_overdue }} days overdue.\n"
        "{% for invoice in invoices %}- {{ invoice.number }}, due {{ invoice.due_on }}: {{ invoice.amount_due }}\n"
        "{% endfor %}{% if action == 'update_card' %}Their card can no longer be charged: offer the card-update "
        "link ({{ card_update_url }}).{% elif action == 'confirm_payment' %}Their bank wants them to confirm the "
        "payment: offer the link ({{ confirm_payment_url }}).{% else %}Offer to send the payment link "
        "({{ pay_url }}){% endif %} or to agree a payment plan.",
    ),
    Channel.EMAIL: (
        "{{ total_overdue }} overdue on your account",
        "Hello {{ customer_name }},\n\n{{ invoice_count }} invoice(s) on your account are overdue, "
        "{{ total_overdue }} in all:\n{% for invoice in invoices %}- {{ invoice.number }}, due {{ invoice.due_on }}: "
        "{{ invoice.amount_due }}\n{% endfor %}\n" + CALL_TO_ACTION + "\n\n"
        "{{ collector_signature }}\n{{ sender_company }}",
    ),
}
BUILT_IN[Channel.LETTER] = BUILT_IN[Channel.EMAIL]

# Words for the customer when a decline needs them, not another retry, or when the retries are spent
# (templates with these keys replace them: card-update-needed, payment-authentication-needed,
# payment-not-collected).
CARD_UPDATE_NEEDED = (
    "Please update your card: {{ total_overdue }} could not be charged",
    "Hello {{ customer_name }},\n\nwe could not charge your card on file for {{ total_overdue }}, and trying "
    "again will not help: the card needs to be replaced.\n\nYou can add a new card securely here:\n"
    "{{ card_update_url }}\n\nAs soon as it is saved, we will settle the open invoices with it.\n\n"
    "{{ collector_signature }}\n{{ sender_company }}",
)
AUTHENTICATION_NEEDED = (
    "Please confirm your payment of {{ total_overdue }}",
    "Hello {{ customer_name }},\n\nyour bank asks you to confirm the payment of {{ total_overdue }} "
    "before it goes through. It takes a minute:\n{{ confirm_payment_url }}\n\n"
    "{{ collector_signature }}\n{{ sender_company }}",
)
# The retries are spent (funds never came, or the bank kept declining): no confirmation is pending,
# so the customer is told plainly and given the way to pay that fits why it failed.
PAYMENT_NOT_COLLECTED = (
    "We could not collect {{ total_overdue }}",
    "Hello {{ customer_name }},\n\nwe tried several times but could not collect {{ total_overdue }} from "
    "your card, and we will not try again by ourselves.\n\n" + CALL_TO_ACTION + "\n\n"
    "{{ collector_signature }}\n{{ sender_company }}",
)

# The built-in words of a message asked for by key, when no template has that key: a queued message is
# re-rendered from the same words when what the case owes changes (collections.queued_messages).
BUILT_IN_BY_KEY = {
    "card-update-needed": CARD_UPDATE_NEEDED,
    "payment-authentication-needed": AUTHENTICATION_NEEDED,
    "payment-not-collected": PAYMENT_NOT_COLLECTED,
}

COLLECTOR_DAY = (dt.time(9), dt.time(17))  # a call task falls due within the collector's working day


def usable_channels(customer: Customer) -> list[str]:
    """The channels this customer can be reached on now, in no particular order."""
    consents = {consent.channel: consent.granted for consent in customer.consents.all()}
    phone_ok = bool(customer.phone) and customer.phone_unusable_since is None
    usable = []
    if customer.email and customer.email_unusable_since is None and consents.get(Channel.EMAIL, True):
        usable.append(Channel.EMAIL)
    if phone_ok and consents.get(Channel.SMS, False):
        usable.append(Channel.SMS)
    if customer.postal_address.strip():
        usable.append(Channel.LETTER)
    if phone_ok:
        usable.append(Channel.CALL)
    return usable


def channel_for(customer: Customer, wanted: str) -> str:
    usable = usable_channels(customer)
    if wanted in usable:
        return wanted
    # Nothing left at all: a call task, so a person finds another way to reach the customer.
    return next((channel for channel in FALLBACK_ORDER if channel in usable), Channel.CALL)


class TemplateBook:
    """The templates a batch may need, loaded in one query, chosen by language and segment."""

    def __init__(self, keys: set[str]) -> None:
        candidates = keys | {f"{key}-{channel}" for key in keys for channel in Channel.values}
        candidates |= {f"fallback-{channel}" for channel in Channel.values}
        self.by_key: dict[str, list[MessageTemplate]] = {}
        for template in MessageTemplate.objects.filter(key__in=candidates):
            self.by_key.setdefault(template.key, []).append(template)

    def choose(self, key: str, *, channel: str, language: str, segment: str) -> MessageTemplate | None:
        for candidate in (key, f"{key}-{channel}", f"fallback-{channel}"):
            versions = [template for template in self.by_key.get(candidate, []) if template.channel == channel]
            if versions:
                return best_version(versions, language=language or "en", segment=segment)
        return None


def best_version(versions: list[MessageTemplate], *, language: str, segment: str) -> MessageTemplate:
    """The customer's language before the base language before English; this segment's variant
    before the general one. A variant written for another segment is used only if nothing else is."""
    base = language.split("-")[0]
    fitting = [template for template in versions if template.segment in ("", segment)] or versions

    def rank(template: MessageTemplate) -> tuple[int, int]:
        language_rank = {language: 0, base: 1, "en": 2}.get(template.language, 3)
        return language_rank, 0 if template.segment == segment else 1

    return min(fitting, key=rank)


def compose(
    *,
    case: Case,
    channel: str,
    template_key: str | None,
    book: TemplateBook,
    idempotency_key: str,
    now: dt.datetime,
    draft: bool = False,
    collector: User | None = None,
    built_in: tuple[str, str] | None = None,
) -> Message:
    """An unsaved Message for the case on the best usable channel, in the customer's language.
    `built_in` (subject, body) are the words when no template exists, instead of the channel's."""
    customer = case.customer
    channel = channel_for(customer, channel)
    rules = case.policy.contact_rules
    template, subject, body, html = words_for(
        case=case,
        channel=channel,
        template_key=template_key,
        book=book,
        today=now.date(),
        collector=collector,
        built_in=built_in,
    )
    return Message(
        customer=customer,
        channel=channel,
        template=template,
        template_key=template_key or Message.BUILT_IN_WORDS,
        to_address=_address(customer, channel),
        subject=subject,
        body=body,
        html_body=html,
        status=Message.Status.DRAFT if draft else Message.Status.QUEUED,
        contact_rules=rules,
        assigned_to=case.assignee if channel == Channel.CALL or draft else None,
        idempotency_key=idempotency_key,
        created_at=now,
        send_after=_collector_moment(case.assignee, now) if channel == Channel.CALL else now,
    )


def words_for(
    *,
    case: Case,
    channel: str,
    template_key: str | None,
    book: TemplateBook,
    today: dt.date,
    collector: User | None = None,
    built_in: tuple[str, str] | None = None,
) -> tuple[MessageTemplate | None, str, str, str]:
    """The template used and the subject, body and HTML of a message on `channel` for the case as it
    stands (its invoices' amounts now): the words a message is composed with, and re-rendered with."""
    customer = case.customer
    rules = case.policy.contact_rules
    discreet = channel == Channel.SMS and bool(rules and rules.discreet_sms)
    context = message_context(
        customer=customer,
        currency=case.currency,
        invoices=list(case.invoices.all()),
        today=today,
        collector=collector or case.assignee,
        discreet=discreet,
        payment_problem=case.payment_problem,
    )
    if template_key == Message.BUILT_IN_WORDS:
        template_key = None
    template = (
        book.choose(template_key, channel=channel, language=customer.language, segment=customer.segment)
        if template_key
        else None
    )
    built_in = built_in or BUILT_IN_BY_KEY.get(template_key or "")
    words = built_in if built_in and channel != Channel.SMS else BUILT_IN[channel]
    template, subject, body, html = render_or_built_in(template, context, built_in=words)
    if channel == Channel.SMS:
        from dunning_site.notifications.sms import fit_sms

        subject, body, html = "", fit_sms(" ".join(body.split())), ""
    return template, subject, body, html if channel == Channel.EMAIL else ""


def render_or_built_in(
    template: MessageTemplate | None, context: dict, *, built_in: tuple[str, str]
) -> tuple[MessageTemplate | None, str, str, str]:
    """The template's subject, body and HTML, or the built-in words when there is no template or
    it no longer compiles (saved before validation, or by hand in the database): a broken template
    must not stop the ladder. Returns the template actually used."""
    if template is not None:
        try:
            return (template, *render_message(template, context))
        except TemplateSyntaxError as error:
            logger.error("Template %s cannot be rendered (%s); using the built-in text", template, error)
    subject_source, body_source = built_in
    return None, one_line(render_text(subject_source, context)), render_text(body_source, context).strip() + "\n", ""


def _address(customer: Customer, channel: str) -> str:
    if channel == Channel.EMAIL:
        return customer.email
    if channel == Channel.LETTER:
        return customer.postal_address
    return customer.phone


def _collector_moment(collector: User | None, now: dt.datetime) -> dt.datetime:
    """Now, or the start of the collector's next working day (Mon–Fri, 09:00–17:00 in their zone)."""
    zone = zoneinfo.ZoneInfo(collector.time_zone if collector else "UTC")
    local = now.astimezone(zone)
    for offset in range(8):
        day = local.date() + dt.timedelta(days=offset)
        if day.weekday() >= 5:
            continue
        start = dt.datetime.combine(day, COLLECTOR_DAY[0], tzinfo=zone)
        end = dt.datetime.combine(day, COLLECTOR_DAY[1], tzinfo=zone)
        if now < end:
            return max(now, start.astimezone(dt.UTC))
    return now


def step_template_key(step: Step) -> str | None:
    return step.template.key if step.template else None
