"""Writes to the billing book. Every change of what a customer owes goes through here."""

import datetime as dt

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from dunning_site.accounts.billing import invoice_collected_by_stripe
from dunning_site.accounts.languages import CHOSEN_BY_CUSTOMER, known_language_variant
from dunning_site.accounts.models import Channel, Consent, CreditNote, Customer, Invoice, Payment, User
from dunning_site.accounts.signals import invoice_balance_changed
from dunning_site.accounts.time_zones import Source as TimeZoneSource
from dunning_site.accounts.time_zones import ZoneFinding, zone_from_billing
from dunning_site.lib.money import format_money

OVERPAYMENT = "This payment of %(amount)s is more than the %(remaining)s left to pay on invoice %(number)s."
INVOICE_NOT_OPEN = "Invoice %(number)s is %(status)s; payments are recorded on open invoices only."
AMOUNT_NOT_POSITIVE = "A payment must be more than zero."
PAID_BEFORE_ISSUED = "Invoice %(number)s was issued on %(issued_on)s; a payment cannot be dated before that day."
PAID_IN_FUTURE = "A payment cannot be dated in the future."
PART_PAYMENT_OF_STRIPE_INVOICE = (
    "Invoice %(number)s is collected by Stripe, which can only be told that the whole invoice was paid "
    "elsewhere: after a part payment recorded here, Stripe would still charge the card for all of it. "
    "Record the payment once the whole %(remaining)s left has arrived."
)

# An invoice's issue date is a calendar day with no time zone: a payment is refused as too early
# only when it is dated before that day began anywhere on earth (UTC+14), so a payment received on
# the issue day, noted in any zone, is never refused.
EARLIEST_TIME_ZONE = dt.timedelta(hours=14)
# A billing system's clock may run a little ahead of ours.
CLOCK_TOLERANCE = dt.timedelta(minutes=5)


def payment_date_problem(*, invoice: Invoice, at: dt.datetime, now: dt.datetime) -> str | None:
    """Why a payment of this invoice cannot be dated `at`, or None."""
    issue_day_begins = dt.datetime.combine(invoice.issued_on, dt.time(), tzinfo=dt.UTC) - EARLIEST_TIME_ZONE
    if at < issue_day_begins:
        return PAID_BEFORE_ISSUED % {"number": invoice.number, "issued_on": invoice.issued_on.isoformat()}
    if at > now + CLOCK_TOLERANCE:
        return PAID_IN_FUTURE
    return None


def manual_part_payment_problem(*, invoice: Invoice, amount: int, method: str) -> str | None:
    """Why this money received outside the billing system cannot be recorded on its own, or None.

    Stripe knows no partly paid invoice: it is told "paid out of band" for the whole invoice, and
    until then its own retries charge the card for the whole amount. So a bank transfer or cheque
    that leaves something to pay on an invoice Stripe collects would be charged again on top; it
    waits until the rest has arrived, and is then recorded as one payment that settles the invoice."""
    if method not in Payment.MANUAL_METHODS or amount >= invoice.owed:
        return None
    if not invoice_collected_by_stripe(invoice):
        return None
    return PART_PAYMENT_OF_STRIPE_INVOICE % {
        "number": invoice.number,
        "remaining": format_money(invoice.owed, invoice.currency),
    }


@transaction.atomic
def customer_create(**fields) -> Customer:
    customer = Customer(**fields)
    customer.full_clean()
    customer.save()
    return customer


@transaction.atomic
def invoice_create(
    *,
    customer: Customer,
    number: str,
    currency: str,
    total: int,
    issued_on: dt.date,
    due_on: dt.date,
    amount_paid: int = 0,
    external_id: str | None = None,
    hosted_payment_url: str = "",
) -> Invoice:
    invoice = Invoice(
        customer=customer,
        number=number,
        currency=currency,
        total=total,
        amount_paid=amount_paid,
        issued_on=issued_on,
        due_on=due_on,
        external_id=external_id,
        hosted_payment_url=hosted_payment_url,
        status=Invoice.Status.PAID if total and amount_paid == total else Invoice.Status.OPEN,
    )
    invoice.full_clean()
    invoice.save()
    invoice_balance_changed.send(sender=Invoice, invoice=invoice, actor=None, at=None)
    return invoice


@transaction.atomic
def invoice_saved(*, invoice: Invoice, actor: User | None = None) -> None:
    """Tell the rest of the product that staff changed an invoice (the admin saves it itself)."""
    invoice_balance_changed.send(sender=Invoice, invoice=invoice, actor=actor, at=None)


def customer_portal_links_revoke(*, customer: Customer) -> None:
    """Kill every portal and card-update link sent to this customer so far (e.g. a forwarded email)."""
    Customer.objects.filter(pk=customer.pk).update(portal_link_version=F("portal_link_version") + 1)
    customer.refresh_from_db(fields=["portal_link_version"])


@transaction.atomic
def payment_record(
    *,
    invoice: Invoice,
    amount: int,
    method: str = Payment.Method.CARD,
    status: str = Payment.Status.SUCCEEDED,
    at: dt.datetime | None = None,
    reference: str = "",
    external_id: str | None = None,
    decline_code: str = "",
    advice_code: str = "",
    network_decline_code: str = "",
    network_advice_code: str = "",
    decline_message: str = "",
    recorded_by: User | None = None,
) -> Payment:
    """Record a payment attempt; a successful one reduces what is owed, and pays the invoice in full.
    Its date must fall between the invoice's issue day and now, whoever records it."""
    if amount <= 0:
        raise ValidationError({"amount": AMOUNT_NOT_POSITIVE})
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    now = timezone.now()
    at = at or now
    if problem := payment_date_problem(invoice=invoice, at=at, now=now):
        raise ValidationError({"at": problem})
    if status == Payment.Status.SUCCEEDED:
        if invoice.status != Invoice.Status.OPEN:
            raise ValidationError(INVOICE_NOT_OPEN % {"number": invoice.number, "status": invoice.status})
        remaining = invoice.owed
        if amount > remaining:
            raise ValidationError(
                {
                    "amount": OVERPAYMENT
                    % {
                        "amount": format_money(amount, invoice.currency),
                        "remaining": format_money(remaining, invoice.currency),
                        "number": invoice.number,
                    }
                }
            )
        if problem := manual_part_payment_problem(invoice=invoice, amount=amount, method=method):
            raise ValidationError({"amount": problem})
    payment = Payment(
        invoice=invoice,
        amount=amount,
        method=method,
        status=status,
        at=at,
        reference=reference,
        external_id=external_id,
        decline_code=decline_code,
        advice_code=advice_code,
        network_decline_code=network_decline_code,
        network_advice_code=network_advice_code,
        decline_message=decline_message,
        recorded_by=recorded_by,
    )
    payment.full_clean()
    payment.save()
    if status == Payment.Status.SUCCEEDED:
        invoice.amount_paid += amount
        if invoice.owed == 0:  # paid, the rest (if any) written off
            invoice.status = Invoice.Status.PAID
        invoice.save(update_fields=["amount_paid", "status", "updated_at"])
        invoice.refresh_from_db(fields=["amount_remaining"])
        invoice_balance_changed.send(sender=Invoice, invoice=invoice, actor=recorded_by, at=payment.at, payment=payment)
    return payment


CREDIT_NOT_POSITIVE = "A credit note must be more than zero."
CREDIT_ABOVE_OWED = "A credit note of %(amount)s is more than the %(remaining)s left to pay on invoice %(number)s."


@transaction.atomic
def invoices_credit(
    *,
    credits: list[tuple[Invoice, int]],
    reason: str,
    at: dt.datetime | None = None,
    recorded_by: User | None = None,
) -> list[CreditNote]:
    """Write off part of what is left to pay on open invoices, (invoice, amount) each: a credit note
    per invoice, and each invoice then shows that much less as owed (amount_written_off, so
    amount_remaining, wherever it is read). An invoice left with nothing to pay is settled (paid), as
    Stripe settles one a credit note covers. All are written before the rest of the product hears of
    any (invoice_balance_changed), so it sees the whole write-off at once. Telling the billing
    system is the caller's business (collections.stripe_updates, after the commit)."""
    at = at or timezone.now()
    credit_notes = []
    invoices = []
    for invoice, amount in credits:
        if amount <= 0:
            raise ValidationError({"amount": CREDIT_NOT_POSITIVE})
        invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
        if invoice.status != Invoice.Status.OPEN:
            raise ValidationError(INVOICE_NOT_OPEN % {"number": invoice.number, "status": invoice.status})
        if amount > invoice.owed:
            remaining = format_money(invoice.owed, invoice.currency)
            amount_shown = format_money(amount, invoice.currency)
            raise ValidationError(
                {
                    "amount": CREDIT_ABOVE_OWED
                    % {"amount": amount_shown, "remaining": remaining, "number": invoice.number}
                }
            )
        credit_note = CreditNote(invoice=invoice, amount=amount, reason=reason[:500], at=at, recorded_by=recorded_by)
        credit_note.full_clean()
        credit_note.save()
        credit_notes.append(credit_note)
        invoice.amount_written_off += amount
        if invoice.owed == 0:
            invoice.status = Invoice.Status.PAID
        invoice.save(update_fields=["amount_written_off", "status", "updated_at"])
        invoice.refresh_from_db(fields=["amount_remaining"])
        invoices.append(invoice)
    for invoice in invoices:
        invoice_balance_changed.send(sender=Invoice, invoice=invoice, actor=recorded_by, at=at)
    return credit_notes


CONSENT_CHANNEL_UNKNOWN = "Unknown channel %(channel)s."


@transaction.atomic
def consent_record(
    *, customer: Customer, channel: str, granted: bool, source: str, note: str = "", at: dt.datetime | None = None
) -> Consent:
    """Record the customer's current choice for a channel (an opt-out takes effect at once:
    delivery checks consent at send time)."""
    consent, _ = Consent.objects.update_or_create(
        customer=customer,
        channel=channel,
        defaults={"granted": granted, "source": source, "note": note, "recorded_at": at or timezone.now()},
    )
    return consent


@transaction.atomic
def contact_mark_unusable(*, customer: Customer, channel: str, reason: str, at: dt.datetime | None = None) -> Customer:
    """An address that bounced hard, drew a complaint, or reached the wrong person is not used again
    until staff correct it. `channel` is "email" or "sms"/"call" (both mean the phone number)."""
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    at = at or timezone.now()
    if channel == Channel.EMAIL:
        customer.email_unusable_since, customer.email_unusable_reason = at, reason[:255]
    else:
        customer.phone_unusable_since, customer.phone_unusable_reason = at, reason[:255]
    customer.save(
        update_fields=[
            "email_unusable_since",
            "email_unusable_reason",
            "phone_unusable_since",
            "phone_unusable_reason",
            "updated_at",
        ]
    )
    return customer


# ---------------------------------------------------------------------------------------------
# The billing system's objects (Stripe's shapes) into the book

INVOICE_STATUSES = {"open": "open", "paid": "paid", "void": "void", "uncollectible": "uncollectible"}
# Once an invoice is settled one way or another, an event carrying an older "open" state (events
# arrive out of order) does not reopen it.
SETTLED = {Invoice.Status.PAID, Invoice.Status.VOID, Invoice.Status.UNCOLLECTIBLE}


@transaction.atomic
def customer_upsert_from_billing(*, data: dict, card: dict | None = None) -> Customer:
    """Create or update a customer from a Stripe customer object and, when known, its default
    payment method (`card`, or `invoice_settings.default_payment_method` expanded in `data`).

    What Stripe knows is learned: name, email, phone, language (preferred locales), the card on
    file and the time zone. Staff edits win: a zone or language set by staff (or a language the
    customer chose on their page) is never replaced,
    and fields Stripe does not know (segment, consents) are untouched."""
    data, card = billing_object_cleaned(data), billing_object_cleaned(card) if card else card
    customer = Customer.objects.select_for_update().filter(external_id=data["id"]).first()
    if customer is None:
        customer = Customer(external_id=data["id"], language_source="billing", time_zone_source=TimeZoneSource.UNKNOWN)
    name_field = Customer._meta.get_field("name")
    customer.name = (data.get("name") or data.get("email") or data["id"])[: name_field.max_length]
    try:
        validate_email(data.get("email") or "")
        customer.email = data["email"]
    except ValidationError:
        pass  # none given, or one Stripe let through that we cannot write to: the one known is kept
    if data.get("phone"):
        from dunning_site.lib.validators import normalize_phone

        customer.phone = normalize_phone(data["phone"]) or customer.phone
    language = language_of_locales(_text_list(data.get("preferred_locales")))
    if language and customer.language_source not in ("staff", CHOSEN_BY_CUSTOMER):
        customer.language = language
    settings_ = data.get("invoice_settings") or {}
    method = settings_.get("default_payment_method")
    if isinstance(method, dict):
        card = card or method
        method = method.get("id")
    customer.default_payment_method = method or customer.default_payment_method
    if card and card.get("id") == customer.default_payment_method:
        _card_apply(customer, card)
    finding = zone_from_billing(customer=data, card=card)
    # The customer's own hints are all in `data`; the card's are not when it was not read, so a
    # poorer hint (the phone) must not replace what the card's address or country taught earlier.
    card_taught = customer.time_zone_source in (TimeZoneSource.ADDRESS, TimeZoneSource.CARD_COUNTRY)
    unread_card = card is None and bool(customer.default_payment_method)
    if not (unread_card and card_taught and _rank(finding.source) > _rank(customer.time_zone_source)):
        _zone_apply(customer, finding)
    customer.full_clean()
    customer.save()
    return customer


def billing_object_cleaned(value):
    """A billing system's object with only what a Stripe object can hold where we read it: text (no NUL
    characters), numbers, booleans, lists and dicts of those. Events are signed, but their contents come
    from whoever filled in the checkout form; a value of an unexpected type is dropped (None), never
    allowed to make the whole update fail."""
    if isinstance(value, dict):
        return {str(key): billing_object_cleaned(item) for key, item in value.items()}
    if isinstance(value, list):
        return [billing_object_cleaned(item) for item in value]
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, bool | int | float) or value is None:
        return value
    return None


def _text_list(values) -> list[str]:
    return [value for value in values if isinstance(value, str)] if isinstance(values, list) else []


@transaction.atomic
def customer_card_learn(*, customer: Customer, payment_method: dict) -> bool:
    """A payment method changed (a new expiry from the card network, a billing address): learn it
    when it is the card invoices are charged to, and the zone its address or country tells when
    that beats what is known. Returns whether it was that card."""
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if customer.default_payment_method and payment_method.get("id") != customer.default_payment_method:
        return False
    customer.default_payment_method = payment_method.get("id") or customer.default_payment_method
    _card_apply(customer, payment_method)
    finding = zone_from_billing(customer={"phone": customer.phone}, card=payment_method)
    if _rank(finding.source) < _rank(customer.time_zone_source):
        _zone_apply(customer, finding)
    customer.full_clean()
    customer.save()
    return True


def card_expiry_of(card: dict) -> dt.date | None:
    """The last day a card is valid: the end of its expiry month."""
    try:
        year, month = int(card["exp_year"]), int(card["exp_month"])
    except (KeyError, TypeError, ValueError):
        return None
    return dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)


def language_of_locales(locales: list[str]) -> str:
    """The first of the customer's preferred locales that the product speaks (Django's languages,
    the most specific variant known: de-DE → de, pt-BR → pt-BR), as a BCP 47 tag; "" when none.

    Every language Django knows, not only the pages' (settings.LANGUAGES): staff may write message
    templates in any of them, and a page falls back to English by itself."""
    for locale in locales:
        try:
            code = known_language_variant(str(locale).replace("_", "-"))
        except LookupError:
            continue
        language, _, region = code.partition("-")
        return f"{language}-{region.upper()}" if region and len(region) == 2 else code
    return ""


def card_fields_of(card: dict) -> dict:
    """The Customer fields a Stripe card (a payment method's `card`) sets."""
    return {
        "card_brand": (card.get("brand") or "")[:20],
        "card_last4": (card.get("last4") or "")[:4],
        "card_expires_on": card_expiry_of(card),
    }


def _card_apply(customer: Customer, payment_method: dict) -> None:
    for name, value in card_fields_of(payment_method.get("card") or {}).items():
        setattr(customer, name, value)


def _zone_apply(customer: Customer, finding: ZoneFinding) -> None:
    if customer.time_zone_source == TimeZoneSource.STAFF:
        return
    customer.time_zone = finding.zone
    customer.time_zone_source = finding.source
    customer.time_zone_candidates = list(finding.candidates)


def _rank(source: str) -> int:
    return TimeZoneSource.RANK.index(source) if source in TimeZoneSource.RANK else len(TimeZoneSource.RANK)


@transaction.atomic
def invoice_upsert_from_billing(*, data: dict, customer: Customer) -> Invoice | None:
    """Create or update an invoice from a Stripe invoice object (drafts are ignored: not owed yet)."""
    status = INVOICE_STATUSES.get(data.get("status") or "")
    if status is None:
        return None
    invoice = Invoice.objects.select_for_update().filter(external_id=data["id"]).first()
    created = _date_of(data.get("created"))
    finalized = _date_of((data.get("status_transitions") or {}).get("finalized_at")) or created
    if invoice is None:
        invoice = Invoice(external_id=data["id"], customer=customer, currency=data["currency"].upper())
    elif invoice.status in SETTLED and status == Invoice.Status.OPEN:
        # Stripe never reopens an invoice: "open" here is older news, or the invoice was settled
        # here (a bank transfer recorded by staff) and the billing system has not heard yet.
        return invoice
    invoice.number = data.get("number") or data["id"]
    # A credit note issued before payment (a write-off) lowers Stripe's amount_due; the book keeps the
    # amount due before it as the total and the credit as written off, so it is not deducted twice.
    credited = data.get("pre_payment_credit_notes_amount") or 0
    invoice.total = data.get("amount_due", data.get("total", 0)) + credited
    # Payments recorded here (bank transfers) count even when the billing system does not know them.
    invoice.amount_paid = min(max(data.get("amount_paid", 0), invoice.amount_paid or 0), invoice.total)
    # Credits recorded here count before Stripe has issued them (the job runs after the commit), but
    # never beyond what is unpaid: money Stripe collected meanwhile was paid, not written off.
    written_off = max(credited, invoice.amount_written_off or 0)
    invoice.amount_written_off = min(written_off, invoice.total - invoice.amount_paid)
    invoice.issued_on = finalized
    invoice.due_on = max(_date_of(data.get("due_date")) or finalized, finalized)
    invoice.status = status
    invoice.hosted_payment_url = data.get("hosted_invoice_url") or ""
    invoice.pdf_url = data.get("invoice_pdf") or ""
    invoice.full_clean(validate_unique=False)
    invoice.save()
    invoice.refresh_from_db(fields=["amount_remaining"])
    invoice_balance_changed.send(sender=Invoice, invoice=invoice, actor=None, at=None)
    return invoice


def _date_of(timestamp: int | None) -> dt.date | None:
    if not timestamp:
        return None
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).date()


LANGUAGE_NOT_OFFERED = "“%(language)s” is not one of the languages the customer's pages are written in."


@transaction.atomic
def customer_language_choose(*, customer: Customer, language: str) -> Customer:
    """The customer chose a language on one of their pages: their pages and the messages that follow
    are written in it, and the billing system's preferred locales no longer replace it (staff may).
    A regional tag of the chosen language (de-AT for de) is kept as it is; any other tag is replaced,
    one the pages do not speak included (pt-BR choosing English: English messages from now on)."""
    if language not in dict(settings.LANGUAGES):
        raise ValueError(LANGUAGE_NOT_OFFERED % {"language": language})
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    primary = customer.language.replace("_", "-").split("-")[0].lower()
    if primary != language:
        customer.language = language
    customer.language_source = CHOSEN_BY_CUSTOMER
    customer.save(update_fields=["language", "language_source", "updated_at"])
    return customer
