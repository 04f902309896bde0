"""The customer's portal through its pages: what they owe in their own language and currency, something
wrong (a question, a dispute that holds their cases, a document kept private), their contact choices,
and every portal URL refusing a bad link with nothing about anyone on the page."""

import datetime as dt

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext

from dunning_site.accounts.models import Channel, Consent, Customer
from dunning_site.accounts.services import customer_portal_links_revoke
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory, UserFactory
from dunning_site.collections import customer_links, holds
from dunning_site.collections.case_core import case_open
from dunning_site.collections.models import Case, CaseEvent, CustomerRequest, Policy, Promise
from dunning_site.collections.roles import COLLECTOR, VIEWER
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.portal.forms import ATTACHMENT_TOO_LARGE, ATTACHMENT_WRONG_TYPE

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.UTC)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PAGES = [
    "portal:home",
    "portal:something_wrong",
    "portal:something_wrong_received",
    "portal:preferences",
    "portal:promise",
]
FORMS = ["portal:something_wrong", "portal:preferences", "portal:promise"]


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture(autouse=True)
def private_media(settings, tmp_path):
    settings.PRIVATE_MEDIA_ROOT = tmp_path / "private"
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.PRIVATE_MEDIA_ROOT


@pytest.fixture
def customer() -> Customer:
    customer = CustomerFactory(name="Jürgen Weber", company="Weber Maschinenbau GmbH", email="juergen@weber.example")
    customer.language = "de"
    customer.save()
    return customer


@pytest.fixture
def case(customer) -> Case:
    invoices = [
        InvoiceFactory(customer=customer, number="RE-1", total=123_450, due_on=dt.date(2026, 2, 28)),
        InvoiceFactory(customer=customer, number="RE-2", total=5_000, amount_paid=1_000, due_on=dt.date(2026, 3, 5)),
    ]
    return case_open(customer=customer, currency="EUR", policy=standard_policy(), invoices=invoices, now=NOW)


def url(name: str, customer: Customer) -> str:
    return reverse(name, args=[customer_links.portal_token(customer)])


def test_the_home_page_shows_what_is_owed_in_the_customers_language_and_nothing_of_staff(client, case, customer):
    InvoiceFactory(customer=customer, number="RE-USD", currency="USD", total=9_900, due_on=dt.date(2026, 3, 20))
    case.assignee = UserFactory(username="grace", first_name="Grace")
    case.save()

    response = client.get(url("portal:home", customer))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Weber Maschinenbau GmbH" in page and "j•••@weber.example" in page
    assert "juergen@weber.example" not in page, "the address is masked"
    assert "1.234,50\xa0€" in page and "40,00\xa0€" in page, "German amounts, what is left on each invoice"
    assert "1.274,50\xa0€" in page and "99,00\xa0$" in page, "one total per currency"
    assert "28. Februar 2026" in page and "10 Tage überfällig" in page
    assert "grace" not in page.lower() and "standard" not in page.lower(), "no collector, no policy"
    assert response["Cache-Control"].startswith("max-age=0")


def test_a_customer_who_owes_nothing_is_told_so(client, customer):
    page = client.get(url("portal:home", customer)).content.decode()
    assert "Sie schulden uns derzeit nichts" in page


@pytest.mark.parametrize("name", PAGES)
def test_every_portal_page_refuses_a_bad_link_and_says_nothing_of_anyone(client, case, customer, name):
    good = customer_links.portal_token(customer)
    other = CustomerFactory(name="Other Customer", company="Other Ltd")
    swapped = customer_links.portal_token(other).split(":")[0] + ":" + good.split(":", 1)[1]
    card_link = customer_links.card_update_token(customer)  # another salt: a card link opens no portal
    method = client.post if name in FORMS else client.get

    refused = [method(reverse(name, args=[token])) for token in (good[:-2] + "xx", swapped, card_link)]
    with time_machine.travel(NOW + customer_links.PORTAL_LINK_MAX_AGE + dt.timedelta(minutes=1), tick=False):
        expired = method(reverse(name, args=[good]))
    customer_portal_links_revoke(customer=customer)
    revoked = method(reverse(name, args=[good]))

    assert [response.status_code for response in refused] == [404, 404, 404]
    assert (expired.status_code, revoked.status_code) == (410, 404)
    for response in [*refused, expired, revoked]:
        page = response.content.decode()
        assert "new link" in page or "new one" in page
        assert "Weber" not in page and "Other" not in page and "€" not in page
    assert CustomerRequest.objects.count() == 0 and Consent.objects.count() == 0


@pytest.mark.parametrize("name", FORMS)
def test_every_portal_form_needs_its_csrf_token(case, customer, name):
    strict = Client(enforce_csrf_checks=True)
    data = {"kind": "question", "reason": "other", "text": "Hello", "language": "fr", "promised_on": "2026-03-20"}
    assert strict.post(url(name, customer), data).status_code == 403
    page = strict.get(url(name, customer)).content.decode()
    assert 'name="csrfmiddlewaretoken"' in page
    assert CustomerRequest.objects.count() == 0 and Consent.objects.count() == 0
    assert Promise.objects.count() == 0


def test_a_refused_form_says_so_in_the_browsers_language(case, customer):
    strict = Client(enforce_csrf_checks=True)
    response = strict.post(url("portal:promise", customer), {}, HTTP_ACCEPT_LANGUAGE="de")
    assert response.status_code == 403
    assert "Bitte versuchen Sie es erneut" in response.content.decode()
    assert "CSRF verification failed" not in response.content.decode()


def test_a_question_reaches_the_worklist_and_the_ladder_goes_on(client, case, customer):
    response = client.post(
        url("portal:something_wrong", customer),
        {"kind": "question", "reason": "wrong_amount", "text": "Is VAT included in RE-1?"},
        HTTP_USER_AGENT="Mobile Safari",
    )

    assert response.status_code == 302
    assert client.get(response["Location"]).content.decode().count("Eine Person aus unserem Team antwortet Ihnen") == 1
    (request,) = CustomerRequest.objects.all()
    assert (request.kind, request.reason, request.case, request.user_agent) == (
        "question",
        "wrong_amount",
        case,
        "Mobile Safari",
    )
    case.refresh_from_db()
    assert case.status == Case.Status.OPEN
    event = CaseEvent.objects.get(case=case, type="collections.customer_request.received")
    assert event.data["text"] == "Is VAT included in RE-1?"


def test_a_dispute_holds_every_case_of_the_customer_by_the_hold_rule(client, case, customer, private_media):
    usd = case_open(
        customer=customer,
        currency="USD",
        policy=standard_policy(name="USD", currency="USD"),
        invoices=[InvoiceFactory(customer=customer, currency="USD", due_on=dt.date(2026, 2, 1))],
        now=NOW,
    )
    document = SimpleUploadedFile("bank statement.pdf", PDF, content_type="application/pdf")

    response = client.post(
        url("portal:something_wrong", customer),
        {"kind": "dispute", "reason": "already_paid", "text": "Paid by transfer on 2 March.", "attachment": document},
    )

    assert response.status_code == 302
    assert "Wir haben unsere Erinnerungen ausgesetzt" in client.get(response["Location"]).content.decode()
    for held in (case, usd):
        held.refresh_from_db()
        assert held.status == Case.Status.PAUSED and holds.is_dispute(held.pause_reason)
    (request,) = CustomerRequest.objects.all()
    assert request.attachment_name == "bank statement.pdf"
    stored = private_media / request.attachment.name
    assert stored.read_bytes() == PDF and stored.suffix == ".pdf" and "bank" not in stored.name
    assert "Sie haben bei Ihrer Bank einer Zahlung" not in client.get(url("portal:home", customer)).content.decode()
    assert (
        "Wir haben unsere Erinnerungen an Sie vorerst ausgesetzt"
        in client.get(url("portal:home", customer)).content.decode()
    )


@pytest.mark.parametrize(
    ("name", "content", "problem", "german"),
    [
        ("invoice.pdf", b"MZ\x90\x00 not a pdf at all", ATTACHMENT_WRONG_TYPE, "Bitte senden Sie eine PDF-"),
        (
            "scan.png",
            b"\x89PNG\r\n\x1a\n" + b"0" * 2048,
            ATTACHMENT_TOO_LARGE,
            "Die Datei ist zu groß: höchstens 0 MB.",
        ),
    ],
)
def test_a_wrong_or_large_attachment_is_refused_and_nothing_is_written(
    client, case, customer, settings, name, content, problem, german
):
    settings.PORTAL_ATTACHMENT_MAX_BYTES = 1024
    document = SimpleUploadedFile(name, content)

    response = client.post(
        url("portal:something_wrong", customer),
        {"kind": "dispute", "reason": "other", "text": "See the file.", "attachment": document},
    )

    assert response.status_code == 400
    with translation.override(customer.language):
        problem = gettext(problem) % {"megabytes": 0}
    assert german in problem and problem in response.content.decode(), "in the customer's language"
    assert CustomerRequest.objects.count() == 0
    case.refresh_from_db()
    assert case.status == Case.Status.OPEN


def test_an_empty_message_is_refused_with_a_clear_error(client, case, customer):
    response = client.post(url("portal:something_wrong", customer), {"kind": "question", "reason": "other"})
    assert response.status_code == 400
    assert "Dieses Feld ist zwingend erforderlich." in response.content.decode(), "in the customer's German"
    assert CustomerRequest.objects.count() == 0


def test_staff_read_the_request_on_the_worklist_download_the_document_and_mark_it_answered(client, case, customer):
    document = SimpleUploadedFile("proof.pdf", PDF)
    client.post(
        url("portal:something_wrong", customer),
        {"kind": "dispute", "reason": "already_paid", "text": "Paid.", "attachment": document},
    )
    request = CustomerRequest.objects.get()
    attachment = reverse("collections:customer_request_attachment", args=[request.pk])
    answered = reverse("collections:customer_request_answer", args=[request.pk])
    assert client.get(attachment).status_code == 302, "a customer's link is no staff login"

    viewer = UserFactory(username="vera")
    viewer.groups.add(Group.objects.get(name=VIEWER))
    client.force_login(viewer)
    download = client.get(attachment)
    assert download.status_code == 200 and b"".join(download.streaming_content) == PDF
    assert download["Content-Disposition"].startswith('attachment; filename="proof.pdf"')
    assert client.post(answered).status_code == 403

    collector = UserFactory(username="grace")
    collector.groups.add(Group.objects.get(name=COLLECTOR))
    client.force_login(collector)
    worklist = client.get(reverse("collections:worklist")).content.decode()
    assert "Dispute: I have already paid" in worklist
    assert "proof.pdf" in client.get(reverse("collections:case_detail", args=[case.pk])).content.decode()
    assert client.post(answered).status_code == 302
    assert "No one is waiting for an answer." in client.get(reverse("collections:worklist")).content.decode()
    request.refresh_from_db()
    assert request.answered_by == collector


def test_preferences_change_the_language_and_the_consents_at_once(client, customer):
    page = client.get(url("portal:preferences", customer)).content.decode()
    assert '<option value="de" selected>' in page

    response = client.post(url("portal:preferences", customer), {"language": "fr", "sms": "on"})

    assert response.status_code == 200 and "Vos choix sont enregistrés." in response.content.decode()
    customer.refresh_from_db()
    assert (customer.language, customer.language_source) == ("fr", "customer")
    consents = {(c.channel, c.granted, c.source) for c in Consent.objects.filter(customer=customer)}
    assert not CaseEvent.objects.filter(type="collections.customer.preferences_changed").exists(), "no case yet"
    assert consents == {(Channel.SMS, True, "portal"), (Channel.EMAIL, False, "portal")}


def test_the_portal_slows_down_a_client_that_guesses_links(client, customer, settings):
    settings.PORTAL_RATE_PER_MINUTE = 3
    responses = [client.get(reverse("portal:home", args=[f"guess-{n}"])) for n in range(4)]
    assert [response.status_code for response in responses] == [404, 404, 404, 429]
    assert responses[-1]["Retry-After"] == "60"
    assert client.get(url("portal:home", customer)).status_code == 429, "the limit is per client, not per link"
    card_page = reverse("portal:card", args=[customer_links.card_update_token(customer)])
    assert client.get(card_page).status_code == 429, "the card pages count with the portal's"
    with time_machine.travel(NOW + dt.timedelta(minutes=1, seconds=1), tick=False):
        assert client.get(url("portal:home", customer)).status_code == 200


def test_an_expired_portal_link_says_how_long_portal_links_live(client, customer):
    token = customer_links.portal_token(customer)
    with time_machine.travel(NOW + customer_links.PORTAL_LINK_MAX_AGE + dt.timedelta(days=1), tick=False):
        response = client.get(reverse("portal:home", args=[token]), HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 410
    assert "the links in our messages work for 45 days" in response.content.decode()


def test_a_document_is_served_as_the_type_its_content_was_checked_for_whatever_its_name(client, case, customer):
    disguised = SimpleUploadedFile("x.html", PDF + b"<script>alert(1)</script>", content_type="text/html")
    client.post(
        url("portal:something_wrong", customer),
        {"kind": "question", "reason": "other", "text": "See the file.", "attachment": disguised},
    )
    request = CustomerRequest.objects.get()
    viewer = UserFactory(username="vera")
    viewer.groups.add(Group.objects.get(name=VIEWER))
    client.force_login(viewer)

    download = client.get(reverse("collections:customer_request_attachment", args=[request.pk]))

    assert download["Content-Type"] == "application/pdf"
    assert download["Content-Disposition"] == 'attachment; filename="x.pdf"'
    assert download["Cache-Control"] == "private, no-store"


def test_an_invoice_from_another_system_is_rendered_as_a_pdf_and_a_stripe_invoice_links_to_stripes(
    client, case, customer
):
    ours = case.invoices.get(number="RE-1")
    stripe_invoice = InvoiceFactory(customer=customer, number="RE-S", pdf_url="https://pay.stripe.com/invoice/x/pdf")
    someone_elses = InvoiceFactory(number="RE-OTHER")
    token = customer_links.portal_token(customer)

    home = client.get(url("portal:home", customer)).content.decode()
    pdf = client.get(reverse("portal:invoice_pdf", args=[token, ours.pk]))
    stripes = client.get(reverse("portal:invoice_pdf", args=[token, stripe_invoice.pk]))
    foreign = client.get(reverse("portal:invoice_pdf", args=[token, someone_elses.pk]))

    assert reverse("portal:invoice_pdf", args=[token, ours.pk]) in home
    assert "https://pay.stripe.com/invoice/x/pdf" in home
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-") and pdf["Content-Disposition"] == 'inline; filename="invoice-re-1.pdf"'
    assert (stripes.status_code, stripes["Location"]) == (302, "https://pay.stripe.com/invoice/x/pdf")
    assert foreign.status_code == 404


def test_a_customer_promises_a_day_within_the_policy_and_reminders_wait(client, case, customer):
    page = client.get(url("portal:promise", customer)).content.decode()
    assert "Sie schulden 1.274,50\xa0€" in page and 'value="1274.50"' in page and 'max="2026-04-09"' in page
    assert url("portal:promise", customer) in client.get(url("portal:home", customer)).content.decode()

    response = client.post(
        url("portal:promise", customer), {"promised_on": "2026-03-20", "amount": "1274.50", "reason": "Salary day"}
    )

    assert response.status_code == 200
    assert "1.274,50\xa0€" in response.content.decode() and "20. März 2026" in response.content.decode()
    (promise,) = Promise.objects.all()
    assert (promise.source, promise.amount, promise.reason, promise.status) == (
        "portal",
        127_450,
        "Salary day",
        "pending",
    )
    case.refresh_from_db()
    assert case.status == Case.Status.PAUSED
    assert case.paused_until == dt.datetime(2026, 3, 21, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("data", "field_error"),
    [
        ({"promised_on": "2026-06-01", "amount": "100"}, "Zahlungszusagen sind bis zu 30 Tage im Voraus möglich"),
        ({"promised_on": "2026-03-09", "amount": "100"}, "Das zugesagte Datum muss heute oder später sein."),
        (
            {"promised_on": "2026-03-20", "amount": "5000"},
            "Die Zusage über 5.000,00\xa0€ ist höher als die überfälligen 1.274,50\xa0€.",
        ),
        ({"promised_on": "2026-03-20", "amount": "0"}, "Bitte geben Sie einen Betrag über null ein."),
        ({"promised_on": "soon", "amount": "10"}, "Bitte ein gültiges Datum eingeben."),
    ],
)
def test_a_promise_outside_the_limits_is_refused_next_to_its_field(client, case, customer, data, field_error):
    response = client.post(url("portal:promise", customer), data)
    assert response.status_code == 400
    assert field_error in response.content.decode()
    assert Promise.objects.count() == 0
    case.refresh_from_db()
    assert case.status == Case.Status.OPEN


def test_the_portal_stops_offering_promises_once_the_customer_broke_as_many_as_the_policy_allows(
    client, case, customer
):
    Policy.objects.filter(pk=case.policy_id).update(max_broken_promises=1)
    Promise.objects.create(
        case=case,
        customer=customer,
        promised_on=dt.date(2026, 3, 1),
        amount=1_000,
        currency="EUR",
        source="call",
        status="broken",
        resolved_at=NOW,
    )
    assert url("portal:promise", customer) not in client.get(url("portal:home", customer)).content.decode()
    response = client.post(url("portal:promise", customer), {"promised_on": "2026-03-20", "amount": "10"})
    assert response.status_code == 200 and 'name="promised_on"' not in response.content.decode()
    assert Promise.objects.filter(status="pending").count() == 0


def test_a_customer_with_nothing_overdue_has_nothing_to_promise(client, customer):
    page = client.get(url("portal:promise", customer)).content.decode()
    assert "Es gibt nichts zuzusagen" in page


def test_the_collector_reads_on_the_case_what_the_customer_changed(client, case, customer):
    client.post(url("portal:preferences", customer), {"language": "de", "sms": "on", "email": "on"})
    (event,) = CaseEvent.objects.filter(case=case, type="collections.customer.preferences_changed")
    assert event.data == {"sms": "yes", "reason": "Text messages welcome: yes"}
