"""The customer's portal: what they owe, and what they can do about it — pay, give a new card, tell us
something is wrong, choose how we contact them. No login: the signed link is the key (portal.links)."""

import datetime as dt

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from dunning_site.accounts.billing import PaymentsMode, payments_mode
from dunning_site.accounts.customer_pages import customer_day, customer_money, customer_page, language_switch
from dunning_site.accounts.languages import page_language
from dunning_site.accounts.models import Channel, Consent, Customer, Invoice
from dunning_site.accounts.services import consent_record, customer_language_choose
from dunning_site.collections import customer_links, holds
from dunning_site.collections.customer_payments import customer_pay_now, customer_pay_now_news
from dunning_site.collections.customer_requests import customer_request_record
from dunning_site.collections.models import Case, CustomerRequest, Dispute, Promise
from dunning_site.collections.promises import promise_record, promise_refusal
from dunning_site.collections.timeline import case_event_record
from dunning_site.lib.client_address import client_address
from dunning_site.lib.money import from_minor_units
from dunning_site.notifications.services import recipient_of
from dunning_site.portal.forms import PortalPromiseForm, PreferencesForm, SomethingWrongForm
from dunning_site.portal.invoice_pdf import invoice_pdf
from dunning_site.portal.links import masked_email, portal_page, sender_context

# How the case's timeline names what the customer changed on their preferences page (staff read English).
PREFERENCE_WORDS = {"language": "Language", "sms": "Text messages welcome", "email": "Emails welcome"}
PREFERENCES_SAVED = gettext_lazy("Your choices are saved.")
NOTHING_TO_PROMISE = gettext_lazy("You owe us nothing overdue at the moment: there is nothing to promise.")
# The promise service's field names, as the portal's form names them.
PROMISE_FIELDS = {"promised_on": "promised_on", "promised_amount": "amount", "amount": "amount"}


def _open_invoices(customer: Customer) -> list[Invoice]:
    invoices = Invoice.objects.filter(customer=customer, status=Invoice.Status.OPEN, amount_remaining__gt=0)
    return list(invoices.order_by("due_on", "number"))


def _invoice_rows(invoices: list[Invoice], customer: Customer, token: str, today: dt.date) -> list[dict]:
    return [
        {
            "number": invoice.number,
            "amount": customer_money(invoice.amount_remaining, invoice.currency, customer),
            "due_on": customer_day(invoice.due_on, customer),
            "days_overdue": max((today - invoice.due_on).days, 0),
            "pay_url": invoice.hosted_payment_url,
            "pdf_url": invoice.pdf_url or reverse("portal:invoice_pdf", args=[token, invoice.pk]),
        }
        for invoice in invoices
    ]


def _totals(invoices: list[Invoice], customer: Customer) -> list[str]:
    """What is owed, one line per currency (an invoice is never converted into another currency)."""
    owed: dict[str, int] = {}
    for invoice in invoices:
        owed[invoice.currency] = owed.get(invoice.currency, 0) + invoice.amount_remaining
    return [customer_money(amount, currency, customer) for currency, amount in sorted(owed.items())]


def _page(
    request: HttpRequest, customer: Customer, token: str, template: str, context: dict, status: int = 200
) -> HttpResponse:
    """A page of the portal: in the customer's language, with the language switcher."""
    context = (
        sender_context()
        | {
            "customer_label": customer.company or customer.name,
            "masked_email": masked_email(customer),
            "home_url": reverse("portal:home", args=[token]),
        }
        | context
    )
    switch_url = reverse("portal:home_language", args=[token])
    return customer_page(request, template, context, language=customer.language, status=status, switch_url=switch_url)


@portal_page
@require_POST
def portal_language(request: HttpRequest, customer: Customer, token: str) -> HttpResponse:
    """The switcher: the choice is kept on the customer (emails follow it), then back to the same page."""
    return language_switch(request, customer=customer, back_to=reverse("portal:home", args=[token]))


def _card_on_file(customer: Customer) -> str:
    if not customer.card_last4:
        return ""
    return f"{(customer.card_brand or 'card').title()} •••• {customer.card_last4}"


def _promise_offered(customer: Customer) -> bool:
    case = _promise_case(customer, "")
    return case is not None and promise_refusal(case=case) is None


@portal_page
@require_GET
def portal_home(request: HttpRequest, customer: Customer, token: str) -> HttpResponse:
    today = timezone.localdate()
    on_hold = Case.objects.filter(customer=customer, status=Case.Status.PAUSED).exists()
    invoices = _open_invoices(customer)
    totals = _totals(invoices, customer)
    context = {
        "invoices": _invoice_rows(invoices, customer, token, today),
        "totals": totals,
        "totals_joined": " + ".join(totals),
        "card_url": reverse("portal:card", args=[customer_links.card_update_token(customer)]),
        "card_on_file": _card_on_file(customer),
        # The pay-now button names the card when we know its last digits, else says "your card on file".
        "card_to_charge": _card_on_file(customer) or gettext("your card on file"),
        "something_wrong_url": reverse("portal:something_wrong", args=[token]),
        "promise_url": reverse("portal:promise", args=[token]) if _promise_offered(customer) else "",
        "pay_now_url": reverse("portal:pay", args=[token]) if _pay_now_offered(customer) else "",
        "preferences_url": reverse("portal:preferences", args=[token]),
        # With their bank (Stripe's dispute); a dispute sent from this portal is "your message" below.
        "disputing": Dispute.objects.filter(customer=customer, closed_at__isnull=True).exists(),
        "on_hold": on_hold,
        "open_request": CustomerRequest.objects.filter(customer=customer, answered_at__isnull=True).exists(),
    }
    return _page(request, customer, token, "portal/home.html", context)


@portal_page
@require_http_methods(["GET", "POST"])
def portal_something_wrong(request: HttpRequest, customer: Customer, token: str) -> HttpResponse:
    """A dispute or a question, with an optional document. A dispute holds the customer's cases."""
    form = SomethingWrongForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        customer_request_record(
            customer=customer,
            kind=form.cleaned_data["kind"],
            reason=form.cleaned_data["reason"],
            text=form.cleaned_data["text"],
            attachment=form.cleaned_data["attachment"],
            client_address=client_address(request) or None,
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        )
        return redirect(reverse("portal:something_wrong_received", args=[token]) + f"?kind={form.cleaned_data['kind']}")
    status = 400 if request.method == "POST" else 200
    return _page(request, customer, token, "portal/something_wrong.html", {"form": form}, status=status)


@portal_page
@require_GET
def portal_something_wrong_received(request: HttpRequest, customer: Customer, token: str) -> HttpResponse:
    dispute = request.GET.get("kind") == CustomerRequest.Kind.DISPUTE
    return _page(request, customer, token, "portal/something_wrong_received.html", {"dispute": dispute})


def _consented(customer: Customer, channel: str) -> bool:
    """What the customer has agreed to, as delivery reads it (email unless opted out, SMS only if opted in)."""
    recipient = recipient_of(customer)
    if channel in recipient.opted_out:
        return False
    return recipient.sms_consent if channel == Channel.SMS else True


@portal_page
@require_http_methods(["GET", "POST"])
def portal_preferences(request: HttpRequest, customer: Customer, token: str) -> HttpResponse:
    """Language, SMS consent, email opt-out: each takes effect at once (delivery checks at send time)."""
    initial = {
        "language": page_language(customer.language),
        "sms": _consented(customer, Channel.SMS),
        "email": _consented(customer, Channel.EMAIL),
    }
    form = PreferencesForm(request.POST or None, initial=initial)
    saved = False
    if request.method == "POST" and form.is_valid():
        changed = {}
        with transaction.atomic():
            if form.cleaned_data["language"] != initial["language"]:
                customer = customer_language_choose(customer=customer, language=form.cleaned_data["language"])
                changed["language"] = form.cleaned_data["language"]
            for field, channel in PreferencesForm.CHANNELS.items():
                if form.cleaned_data[field] != initial[field]:
                    consent_record(
                        customer=customer,
                        channel=channel,
                        granted=form.cleaned_data[field],
                        source=Consent.Source.PORTAL,
                    )
                    changed[field] = "yes" if form.cleaned_data[field] else "no"
            # The collector reads on the case what the customer changed (the next step may now take another channel).
            for case in Case.objects.filter(customer=customer, status__in=Case.ACTIVE_STATUSES) if changed else []:
                words = "; ".join(f"{PREFERENCE_WORDS[key]}: {value}" for key, value in changed.items())
                case_event_record(case, "collections.customer.preferences_changed", reason=words, **changed)
        saved = True
    status = 400 if request.method == "POST" and not form.is_valid() else 200
    context = {"form": form, "saved": saved, "saved_message": PREFERENCES_SAVED}
    return _page(request, customer, token, "portal/preferences.html", context, status=status)


@portal_page
@require_GET
def portal_invoice_pdf(request: HttpRequest, customer: Customer, token: str, invoice_id: int) -> HttpResponse:
    """One of the customer's own invoices as a PDF: the billing system's when it has one, else ours."""
    invoice = get_object_or_404(Invoice, pk=invoice_id, customer=customer)
    if invoice.pdf_url:
        return redirect(invoice.pdf_url)
    content = invoice_pdf(invoice=invoice, today=timezone.localdate())
    response = HttpResponse(content, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="invoice-{slugify(invoice.number) or invoice.pk}.pdf"'
    return response


def _promise_case(customer: Customer, currency: str) -> Case | None:
    """The customer's case a promise is about: the one in `currency`, else their oldest active one."""
    cases = Case.objects.filter(customer=customer, status__in=Case.ACTIVE_STATUSES).select_related("policy")
    return cases.filter(currency=currency).first() or cases.order_by("opened_at").first()


@portal_page
@require_http_methods(["GET", "POST"])
def portal_promise(request: HttpRequest, customer: Customer, token: str) -> HttpResponse:
    """Promise a day to pay: reminders wait until the day after it; the policy says how far ahead."""
    case = _promise_case(customer, request.GET.get("currency", ""))
    refusal = promise_refusal(case=case) if case else NOTHING_TO_PROMISE
    if refusal:
        return _page(request, customer, token, "portal/promise.html", {"refusal": refusal})
    latest = timezone.localdate() + dt.timedelta(days=case.policy.max_promise_days)
    initial = {"amount": from_minor_units(case.amount_overdue, case.currency)}
    form = PortalPromiseForm(request.POST or None, initial=initial, currency=case.currency, latest=latest)
    if request.method == "POST" and form.is_valid():
        try:
            promise = promise_record(
                case=case,
                promised_on=form.cleaned_data["promised_on"],
                amount=form.cleaned_data["amount"],
                source=Promise.Source.PORTAL,
                reason=form.cleaned_data["reason"],
            )
        except ValidationError as error:
            for field, messages in error.message_dict.items():
                form.add_error(PROMISE_FIELDS.get(field), messages)
        else:
            context = {
                "promised": customer_money(promise.amount, promise.currency, customer),
                "promised_on": customer_day(promise.promised_on, customer),
            }
            return _page(request, customer, token, "portal/promise_made.html", context)
    context = {
        "form": form,
        "owed": customer_money(case.amount_overdue, case.currency, customer),
        "latest": customer_day(latest, customer),
    }
    status = 400 if request.method == "POST" else 200
    return _page(request, customer, token, "portal/promise.html", context, status=status)


@portal_page
@require_POST
def portal_pay(request: HttpRequest, customer: Customer, token: str) -> HttpResponse:
    """Pay everything open now with the card on file; the status page says what became of it."""
    if not _pay_now_offered(customer):
        return redirect("portal:home", token=token)
    retry_ids = customer_pay_now(customer=customer)
    return redirect(reverse("portal:pay_status", args=[token]) + "?r=" + ",".join(map(str, retry_ids)))


@portal_page
@require_GET
def portal_pay_status(request: HttpRequest, customer: Customer, token: str) -> HttpResponse:
    """The truth about each charge: paid, still going (the page looks again every few seconds), or
    declined with what to do next."""
    retry_ids = [int(part) for part in request.GET.get("r", "").split(",") if part.isdigit()][:50]
    news = customer_pay_now_news(customer=customer, retry_ids=retry_ids)
    rows = [
        {
            "number": item.invoice.number,
            # What was paid, or what is still left to pay.
            "amount": customer_money(
                item.invoice.total if item.state == "paid" else item.invoice.amount_remaining,
                item.invoice.currency,
                customer,
            ),
            "state": item.state,
            "next_step": item.next_step,
            "confirm_url": item.invoice.hosted_payment_url,
        }
        for item in news
    ]
    context = {
        "rows": rows,
        "pending": any(row["state"] == "pending" for row in rows),
        "card_url": reverse("portal:card", args=[customer_links.card_update_token(customer)]),
    }
    return _page(request, customer, token, "portal/pay_status.html", context)


def _pay_now_offered(customer: Customer) -> bool:
    """A card on file, payments configured, something open, and no dispute (which stops every charge)."""
    return (
        bool(customer.default_payment_method)
        and payments_mode() != PaymentsMode.NOT_CONFIGURED
        and Invoice.objects.filter(customer=customer, status=Invoice.Status.OPEN, amount_remaining__gt=0).exists()
        and not holds.customer_is_disputing(customer_id=customer.pk)
    )
