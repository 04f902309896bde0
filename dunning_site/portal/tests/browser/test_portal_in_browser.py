"""The customer's portal on a phone (390×844), as a German customer uses it: what they owe, then a
dispute with a document. Each page is checked by axe-core (bundled, injected by Playwright) for every
accessibility rule it knows: labels, names, contrast, landmarks, focusable controls."""

import datetime as dt

import pytest
from axe_playwright_python.sync_playwright import Axe

from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory
from dunning_site.collections import customer_links
from dunning_site.collections.case_core import case_open
from dunning_site.collections.models import Case, CustomerRequest
from dunning_site.collections.tests.factories import standard_policy

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def phone(page):
    page.set_viewport_size(PHONE)
    return page


def accessible(page) -> None:
    results = Axe().run(page)
    assert results.violations_count == 0, results.generate_report()


def test_a_german_customer_reads_what_they_owe_and_disputes_it_on_a_phone(
    phone, live_server, screenshot, settings, tmp_path
):
    settings.PRIVATE_MEDIA_ROOT = tmp_path
    customer = CustomerFactory(name="Jürgen Weber", company="Weber Maschinenbau GmbH", email="juergen@weber.example")
    customer.language = "de"
    customer.save()
    invoice = InvoiceFactory(customer=customer, number="RE-7", total=123_450, due_on=dt.date(2026, 3, 2))
    case = case_open(customer=customer, currency="EUR", policy=standard_policy(), invoices=[invoice])
    (tmp_path / "kontoauszug.pdf").write_bytes(PDF)

    phone.goto(f"{live_server.url}/portal/{customer_links.portal_token(customer)}/")
    assert phone.get_by_text("1.234,50\xa0€").first.is_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], "no sideways scrolling"
    accessible(phone)
    screenshot("1-home")

    phone.get_by_role("link", name="Etwas stimmt nicht, oder eine Frage").click()
    phone.get_by_label("Der Forderung widersprechen").check()
    phone.get_by_label("Worum geht es?").select_option("already_paid")
    phone.get_by_label("Erzählen Sie uns mehr").fill("Überwiesen am 3. März.")
    phone.get_by_label("Ein Dokument, das es belegt (optional)").set_input_files(str(tmp_path / "kontoauszug.pdf"))
    accessible(phone)
    screenshot("2-something-wrong")
    phone.get_by_role("button", name="Senden").click()

    phone.get_by_role("heading", name="Vielen Dank, wir haben Ihre Nachricht erhalten").wait_for()
    accessible(phone)
    screenshot("3-received")
    request = CustomerRequest.objects.get()
    assert (request.kind, request.attachment_name) == ("dispute", "kontoauszug.pdf")
    case.refresh_from_db()
    assert case.status == Case.Status.PAUSED
