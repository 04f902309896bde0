"""Finance admins import customers and invoices from CSV or XLSX in the admin: a dry run that lists
every bad row first, then either the good rows only or all-or-nothing, as they choose."""

import datetime as dt
import io
import tempfile

import openpyxl
import pytest
import tablib
import time_machine
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from import_export.formats import base_formats

from dunning_site.accounts.admin import InvoiceAdmin
from dunning_site.accounts.models import Customer, Invoice
from dunning_site.accounts.resources import (
    CUSTOMER_MISSING,
    NEGATIVE_AMOUNT,
    NO_CUSTOMER_WITH_EMAIL,
    NO_CUSTOMER_WITH_EXTERNAL_ID,
    NOTHING_IMPORTED,
    BadRows,
)
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory, UserFactory
from dunning_site.collections.case_core import case_open
from dunning_site.collections.models import Case, CaseEvent
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.collections.tick import tick
from dunning_site.lib.money import TOO_MANY_DECIMALS, UNKNOWN_CURRENCY
from dunning_site.lib.validators import INVALID_PHONE

pytestmark = pytest.mark.django_db

INVOICES = "/admin/accounts/invoice/"
CUSTOMERS = "/admin/accounts/customer/"
CSV = str(InvoiceAdmin.import_formats.index(base_formats.CSV))
XLSX = str(InvoiceAdmin.import_formats.index(base_formats.XLSX))

INVOICE_HEADERS = [
    "number",
    "customer_external_id",
    "customer_email",
    "currency",
    "total",
    "amount_paid",
    "issued_on",
    "due_on",
    "status",
    "external_id",
    "hosted_payment_url",
]
# Rows 1-3 are good (EUR, JPY named by email, KWD fully paid); rows 4-8 are each bad for one reason.
MIXED_INVOICES = [
    ["INV-EUR-1", "cus_eu", "", "eur", "120.50", "", "2026-01-01", "2026-01-31", "", "in_eu_1", "pay.example/eu1"],
    ["INV-JPY-1", "", "Tanaka@Customer.example", "JPY", "15000", "5000", "2026-01-01", "2026-01-31", "", "", ""],
    ["INV-KWD-1", "cus_kw", "", "KWD", "1.250", "1.250", "2026-01-01", "2026-01-31", "", "", ""],
    ["INV-BAD-CUR", "cus_eu", "", "XYZ", "10.00", "", "2026-01-01", "2026-01-31", "", "", ""],
    ["INV-BAD-NEG", "cus_eu", "", "EUR", "-10", "", "2026-01-01", "2026-01-31", "", "", ""],
    ["INV-BAD-CUS", "cus_404", "", "EUR", "10.00", "", "2026-01-01", "2026-01-31", "", "", ""],
    ["INV-BAD-JPY", "cus_jp", "", "JPY", "1.5", "", "2026-01-01", "2026-01-31", "", "", ""],
    ["INV-BAD-DUE", "cus_eu", "", "EUR", "10.00", "", "2026-02-01", "2026-01-31", "", "", ""],
]
GOOD_NUMBERS = {"INV-EUR-1", "INV-JPY-1", "INV-KWD-1"}
BAD_ROW_ERRORS = {
    4: {"currency": [UNKNOWN_CURRENCY % {"code": "XYZ"}]},
    5: {"total": [NEGATIVE_AMOUNT % {"value": "-10"}]},
    6: {"customer": [NO_CUSTOMER_WITH_EXTERNAL_ID % {"value": "cus_404"}]},
    7: {"total": [TOO_MANY_DECIMALS % {"currency": "JPY", "decimals": 0}]},
    8: {"__all__": ["The due date cannot be before the issue date."]},
}


@pytest.fixture(autouse=True)
def _uploads_kept_in_the_test_directory(monkeypatch, tmp_path):
    # The dry run stores the file for the confirmation step in the temp folder; a preview never
    # confirmed would leave it behind.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


@pytest.fixture
def customers():
    return {
        "eu": CustomerFactory(external_id="cus_eu", email="dupont@customer.example"),
        "jp": CustomerFactory(external_id="cus_jp", email="tanaka@customer.example"),
        "kw": CustomerFactory(external_id="cus_kw", email="sabah@customer.example"),
    }


def csv_file(headers: list[str], rows: list[list], name: str = "book.csv") -> SimpleUploadedFile:
    content = tablib.Dataset(*rows, headers=headers).export("csv")
    return SimpleUploadedFile(name, content.encode(), content_type="text/csv")


def xlsx_file(headers: list[str], rows: list[list], name: str = "book.xlsx") -> SimpleUploadedFile:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(headers)
    for row in rows:
        sheet.append(row)
    content = io.BytesIO()
    workbook.save(content)
    return SimpleUploadedFile(
        name, content.getvalue(), content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )


def dry_run(client, admin_url: str, upload, *, file_format: str = CSV, bad_rows: str = BadRows.SKIP):
    response = client.post(
        f"{admin_url}import/", {"import_file": upload, "format": file_format, "resource": "0", "bad_rows": bad_rows}
    )
    assert response.status_code == 200
    return response


def confirm(client, admin_url: str, dry_run_response, **overrides):
    form = dry_run_response.context["confirm_form"]
    data = {name: form.initial.get(name, "") for name in form.fields} | overrides
    response = client.post(f"{admin_url}process_import/", data)
    assert response.status_code == 302
    return response


def errors_by_row(response) -> dict[int, dict[str, list[str]]]:
    return {row.number: row.error_dict for row in response.context["result"].invalid_rows}


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


# ---------------------------------------------------------------------------------------------
# Invoices: the dry run, then the two ways of treating bad rows


@pytest.mark.parametrize("bad_rows", [BadRows.SKIP, BadRows.ALL_OR_NOTHING])
def test_the_dry_run_shows_each_bad_row_and_its_reason_and_writes_nothing(admin_client, customers, bad_rows):
    response = dry_run(admin_client, INVOICES, csv_file(INVOICE_HEADERS, MIXED_INVOICES), bad_rows=bad_rows)

    assert errors_by_row(response) == BAD_ROW_ERRORS
    page = response.content.decode()
    for errors in BAD_ROW_ERRORS.values():
        for messages in errors.values():
            assert messages[0] in page
    assert not Invoice.objects.exists()


def test_importing_the_good_rows_skips_the_bad_ones_and_stores_minor_units(admin_client, admin_user, customers):
    preview = dry_run(admin_client, INVOICES, csv_file(INVOICE_HEADERS, MIXED_INVOICES), bad_rows=BadRows.SKIP)
    assert "Import the good rows, skip the bad ones" in preview.content.decode()

    response = confirm(admin_client, INVOICES, preview)

    imported = {invoice.number: invoice for invoice in Invoice.objects.all()}
    assert set(imported) == GOOD_NUMBERS
    eur, jpy, kwd = imported["INV-EUR-1"], imported["INV-JPY-1"], imported["INV-KWD-1"]
    assert (eur.customer, eur.currency, eur.total, eur.amount_paid, eur.status) == (
        customers["eu"],
        "EUR",
        12_050,
        0,
        Invoice.Status.OPEN,
    )
    assert (eur.external_id, eur.hosted_payment_url) == ("in_eu_1", "https://pay.example/eu1")
    assert (jpy.customer, jpy.total, jpy.amount_paid, jpy.status) == (customers["jp"], 15_000, 5_000, "open")
    assert (kwd.total, kwd.amount_paid, kwd.status) == (1_250, 1_250, Invoice.Status.PAID)
    assert (jpy.issued_on, jpy.due_on, jpy.external_id) == (dt.date(2026, 1, 1), dt.date(2026, 1, 31), None)

    notes = messages_of(response)
    assert "Import finished: 3 new, 0 updated, 0 deleted and 0 skipped invoices." in notes
    assert "5 bad row(s) were skipped, as you chose; the other rows were imported." in notes
    assert "Row 6 (line 7 of the file): customer: No customer with external id “cus_404”." in notes


def test_all_or_nothing_offers_no_confirmation_while_a_row_is_bad(admin_client, customers):
    preview = dry_run(admin_client, INVOICES, csv_file(INVOICE_HEADERS, MIXED_INVOICES), bad_rows="all_or_nothing")

    assert "confirm_form" not in preview.context
    assert "You chose all or nothing, so nothing will be imported while a row is bad" in preview.content.decode()
    assert not Invoice.objects.exists()


def test_confirming_all_or_nothing_with_a_bad_row_writes_nothing(admin_client, customers):
    """Even a confirmation posted for a file with bad rows (the book changed since the dry run, or
    the form was tampered with) writes nothing at all, good rows included."""
    preview = dry_run(admin_client, INVOICES, csv_file(INVOICE_HEADERS, MIXED_INVOICES), bad_rows=BadRows.SKIP)

    response = confirm(admin_client, INVOICES, preview, bad_rows=BadRows.ALL_OR_NOTHING)

    assert not Invoice.objects.exists()
    notes = messages_of(response)
    assert NOTHING_IMPORTED % {"count": 5} in notes
    assert "Row 4 (line 5 of the file): currency: “XYZ” is not an ISO 4217 currency code." in notes
    assert not any(note.startswith("Import finished") for note in notes)


def test_all_or_nothing_imports_a_spotless_file(admin_client, customers):
    good = [row for row in MIXED_INVOICES if row[0] in GOOD_NUMBERS]
    preview = dry_run(admin_client, INVOICES, csv_file(INVOICE_HEADERS, good), bad_rows=BadRows.ALL_OR_NOTHING)
    assert not Invoice.objects.exists()

    confirm(admin_client, INVOICES, preview)

    assert set(Invoice.objects.values_list("number", flat=True)) == GOOD_NUMBERS


def test_an_xlsx_file_with_number_and_date_cells(admin_client, customers):
    """Spreadsheet cells arrive typed: amounts as numbers, dates as dates."""
    jan_1, jan_31 = dt.date(2026, 1, 1), dt.date(2026, 1, 31)
    rows = [
        ["INV-X-EUR", "cus_eu", None, "EUR", 120.5, None, jan_1, jan_31, None, None, None],
        ["INV-X-JPY", "cus_jp", None, "JPY", 15000, 0, "2026-01-01", "2026-01-31", "open", None, None],
        ["INV-X-KWD", "cus_kw", None, "KWD", 1.25, 0.5, jan_1, jan_31, None, None, None],
        ["INV-X-NEG", "cus_eu", None, "EUR", -3, None, jan_1, jan_31, None, None, None],
        ["INV-X-JPY2", "cus_jp", None, "JPY", 99.5, None, jan_1, jan_31, None, None, None],
        [None] * len(INVOICE_HEADERS),  # a formatted but empty row at the end of the sheet
    ]
    preview = dry_run(admin_client, INVOICES, xlsx_file(INVOICE_HEADERS, rows), file_format=XLSX, bad_rows=BadRows.SKIP)
    assert errors_by_row(preview) == {
        4: {"total": [NEGATIVE_AMOUNT % {"value": "-3"}]},
        5: {"total": [TOO_MANY_DECIMALS % {"currency": "JPY", "decimals": 0}]},
    }
    assert not Invoice.objects.exists()

    confirm(admin_client, INVOICES, preview)

    assert dict(Invoice.objects.values_list("number", "total")) == {
        "INV-X-EUR": 12_050,
        "INV-X-JPY": 15_000,
        "INV-X-KWD": 1_250,
    }
    kwd = Invoice.objects.get(number="INV-X-KWD")
    assert (kwd.amount_paid, kwd.issued_on, kwd.due_on) == (500, jan_1, jan_31)


def test_an_invoice_names_its_customer_by_one_column_or_the_other(admin_client, customers):
    rows = [
        ["INV-E-1", "", "nobody@customer.example", "EUR", "1", "", "2026-01-01", "2026-01-31", "", "", ""],
        ["INV-E-2", "", "", "EUR", "1", "", "2026-01-01", "2026-01-31", "", "", ""],
    ]
    preview = dry_run(admin_client, INVOICES, csv_file(INVOICE_HEADERS, rows))

    assert errors_by_row(preview) == {
        1: {"customer": [NO_CUSTOMER_WITH_EMAIL % {"value": "nobody@customer.example"}]},
        2: {"customer": [CUSTOMER_MISSING]},
    }
    assert "confirm_form" not in preview.context, "nothing good is left to import"


def test_an_existing_invoice_keeps_its_currency(admin_client, customers):
    InvoiceFactory(number="INV-OLD", customer=customers["eu"], currency="EUR", total=1_000)
    rows = [["INV-OLD", "cus_eu", "", "USD", "10.00", "", "2025-12-22", "2026-01-05", "", "", ""]]

    preview = dry_run(admin_client, INVOICES, csv_file(INVOICE_HEADERS, rows))

    assert errors_by_row(preview) == {
        1: {"currency": ["Invoice INV-OLD is in EUR; the currency of an existing invoice cannot change."]}
    }


def test_import_needs_the_right_to_add_and_change(client, customers):
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_invoice"))
    client.force_login(viewer)

    assert client.get(f"{INVOICES}import/").status_code == 403
    assert client.get(INVOICES).status_code == 200


# ---------------------------------------------------------------------------------------------
# Imported invoices reconcile open cases like any other change

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def open_case(customers):
    with time_machine.travel(NOW, tick=False):
        policy = standard_policy()
        invoice = InvoiceFactory(
            number="INV-CASE-1", customer=customers["eu"], total=9_900, due_on=NOW.date() - dt.timedelta(days=21)
        )
        case = case_open(customer=customers["eu"], currency="EUR", policy=policy, invoices=[invoice], now=NOW)
        yield case


def case_row(number: str, total: str, paid: str, due_on: dt.date) -> list:
    issued_on = due_on - dt.timedelta(days=14)
    return [number, "cus_eu", "", "EUR", total, paid, issued_on.isoformat(), due_on.isoformat(), "", "", ""]


def test_importing_the_invoice_fully_paid_resolves_its_case(admin_client, admin_user, open_case):
    invoice = open_case.invoices.get()
    preview = dry_run(
        admin_client, INVOICES, csv_file(INVOICE_HEADERS, [case_row("INV-CASE-1", "99", "99", invoice.due_on)])
    )
    open_case.refresh_from_db()
    assert open_case.status != Case.Status.RESOLVED, "a dry run changes nothing"

    confirm(admin_client, INVOICES, preview)

    invoice.refresh_from_db()
    open_case.refresh_from_db()
    assert (invoice.amount_paid, invoice.status) == (9_900, Invoice.Status.PAID)
    assert open_case.status == Case.Status.RESOLVED
    resolved = CaseEvent.objects.get(case=open_case, type="collections.case.resolved")
    assert resolved.user == admin_user


def test_importing_a_part_payment_lowers_what_the_case_is_owed(admin_client, open_case):
    invoice = open_case.invoices.get()
    preview = dry_run(
        admin_client, INVOICES, csv_file(INVOICE_HEADERS, [case_row("INV-CASE-1", "99", "40", invoice.due_on)])
    )

    confirm(admin_client, INVOICES, preview)

    open_case.refresh_from_db()
    assert open_case.is_active
    assert open_case.amount_overdue == 5_900
    assert CaseEvent.objects.filter(case=open_case, type="collections.case.amount_changed").exists()


def test_an_imported_overdue_invoice_joins_the_open_case(admin_client, open_case):
    due_on = NOW.date() - dt.timedelta(days=10)
    preview = dry_run(admin_client, INVOICES, csv_file(INVOICE_HEADERS, [case_row("INV-CASE-2", "25.00", "", due_on)]))
    confirm(admin_client, INVOICES, preview)

    with time_machine.travel(NOW, tick=False):
        tick()

    open_case.refresh_from_db()
    assert set(open_case.invoices.values_list("number", flat=True)) == {"INV-CASE-1", "INV-CASE-2"}
    assert open_case.amount_overdue == 9_900 + 2_500
    assert Case.objects.count() == 1


# ---------------------------------------------------------------------------------------------
# Customers

CUSTOMER_HEADERS = [
    "external_id",
    "name",
    "company",
    "email",
    "phone",
    "time_zone",
    "language",
    "segment",
    "postal_address",
]


def test_customers_are_created_and_updated_with_phones_in_e164(admin_client):
    existing = CustomerFactory(external_id="cus_1", name="Old name", phone="")
    rows = [
        [
            "cus_1",
            "Ada Lovelace",
            "Engines Ltd",
            "ADA@engines.example",
            "+33 6 12 34 56 78",
            "Europe/Paris",
            "fr",
            "",
            "",
        ],
        ["", "Charles Babbage", "", "charles@engines.example", "", "", "", "smb", "1 Dorset St\nLondon\nUK"],
        ["cus_3", "Bad Phone", "", "", "12345", "Europe/Paris", "en", "", ""],
        ["cus_4", "Bad Zone", "", "", "", "Mars/Olympus", "en", "", ""],
    ]
    preview = dry_run(admin_client, CUSTOMERS, csv_file(CUSTOMER_HEADERS, rows))
    assert errors_by_row(preview) == {
        3: {"phone": [INVALID_PHONE.replace("%(value)s", "12345")]},
        4: {"time_zone": ["“Mars/Olympus” is not an IANA time zone such as Europe/Paris."]},
    }
    assert Customer.objects.count() == 1

    confirm(admin_client, CUSTOMERS, preview)

    existing.refresh_from_db()
    assert (existing.name, existing.phone, existing.email, existing.time_zone, existing.language) == (
        "Ada Lovelace",
        "+33612345678",
        "ADA@engines.example",
        "Europe/Paris",
        "fr",
    )
    babbage = Customer.objects.get(name="Charles Babbage")
    assert (babbage.external_id, babbage.time_zone, babbage.language, babbage.segment) == (None, "UTC", "en", "smb")
    assert babbage.postal_address == "1 Dorset St\nLondon\nUK"
    assert not Customer.objects.filter(external_id__in=["cus_3", "cus_4"]).exists()


def test_a_customers_file_without_external_ids_only_creates(admin_client):
    CustomerFactory(external_id=None, name="Someone without an id")
    headers = ["name", "email", "phone"]
    preview = dry_run(
        admin_client,
        CUSTOMERS,
        csv_file(headers, [["Grace Hopper", "grace@navy.example", "+1 202-555-0143"]]),
        bad_rows=BadRows.ALL_OR_NOTHING,
    )

    confirm(admin_client, CUSTOMERS, preview)

    assert Customer.objects.count() == 2
    assert Customer.objects.get(name="Grace Hopper").phone == "+12025550143"
