"""The card-update link: signed, expiring, revocable; Stripe Checkout through the local fake; the sandbox,
which exists only when asked for (tests run with DEBUG off, as production does)."""

import datetime as dt
from urllib.parse import urlparse

import django_rq
import pytest
import time_machine
from django.urls import reverse

from dunning_site.accounts.models import Customer, Invoice
from dunning_site.accounts.services import customer_portal_links_revoke
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory
from dunning_site.collections import customer_links
from dunning_site.collections.context import message_context
from dunning_site.collections.ladder import cases_open_overdue
from dunning_site.collections.models import Case, Dispute, PaymentRetry
from dunning_site.collections.tests import stripe_fake
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.portal import card_update

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.UTC)
SITE_URL = "https://dunning.example.com"
SESSIONS = "/v1/checkout/sessions"


@pytest.fixture(autouse=True)
def site(settings):
    settings.SITE_URL = SITE_URL


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def sandbox(settings):
    settings.STRIPE_API_KEY = ""
    settings.PAYMENTS_SANDBOX = True


@pytest.fixture
def payments_not_configured(settings):
    """Production without a Stripe key: DEBUG is off and nobody asked for the sandbox."""
    settings.STRIPE_API_KEY = ""
    settings.PAYMENTS_SANDBOX = False


@pytest.fixture
def customer(stripe_api):
    stripe_api.customers["cus_P1"] = stripe_fake.resource("customer", id="cus_P1", email="ada@example.com")
    return CustomerFactory(external_id="cus_P1", name="Ada Lovelace", email="ada@example.com")


def path_of(url: str) -> str:
    assert url.startswith(SITE_URL + "/")
    return urlparse(url).path


def sessions_created(stripe_api) -> list[dict]:
    return [params for method, path, params in stripe_api.requests if (method, path) == ("POST", SESSIONS)]


def assert_refused(response, *, status: int, customer: Customer) -> None:
    assert response.status_code == status
    content = response.content.decode()
    assert "new link" in content
    assert customer.name not in content and customer.email not in content and customer.company not in content


def test_a_valid_link_sends_the_customer_to_a_fresh_stripe_checkout_session(clock, client, stripe_api, customer):
    link = customer_links.card_update_url(customer)
    response = client.get(path_of(link))
    assert response.status_code == 302
    assert response["Location"].startswith("https://checkout.stripe.com/c/pay/cs_test_fake")
    (session,) = sessions_created(stripe_api)
    done = SITE_URL + reverse("portal:card_done", args=[customer_links.card_update_token(customer)])
    assert (session["mode"], session["customer"]) == ("setup", "cus_P1")
    assert (session["success_url"], session["cancel_url"]) == (done + "?updated=1", done)
    assert response["Cache-Control"].startswith("max-age=0")
    # Opened again (a Checkout session dies within a day, the link does not): another session.
    second = client.get(path_of(link))
    assert second["Location"] != response["Location"]
    assert len(sessions_created(stripe_api)) == 2


@pytest.mark.parametrize("tamper", ["signature", "payload", "other_salt", "garbage"])
def test_a_tampered_link_shows_a_friendly_page_and_creates_no_session(clock, client, stripe_api, customer, tamper):
    token = customer_links.card_update_token(customer)
    if tamper == "signature":
        token = token[:-1] + ("A" if token[-1] != "A" else "B")
    elif tamper == "payload":
        other = CustomerFactory()
        token = customer_links.card_update_token(other).split(":")[0] + ":" + token.split(":", 1)[1]
    elif tamper == "other_salt":
        from dunning_site.notifications.unsubscribe import unsubscribe_token

        token = unsubscribe_token(customer_id=customer.pk)
    else:
        token = "not-a-token"
    response = client.get(reverse("portal:card", args=[token]))
    assert_refused(response, status=404, customer=customer)
    assert "not valid" in response.content.decode()
    assert sessions_created(stripe_api) == []


def test_an_expired_link_shows_a_friendly_page(clock, client, stripe_api, customer):
    path = path_of(customer_links.card_update_url(customer))
    clock.shift(dt.timedelta(days=13, hours=23))
    assert client.get(path).status_code == 302
    clock.shift(dt.timedelta(days=1, hours=2))  # 15 days and an hour after it was sent
    response = client.get(path)
    assert_refused(response, status=410, customer=customer)
    assert "expired" in response.content.decode()
    assert len(sessions_created(stripe_api)) == 1


def test_a_revoked_link_shows_a_friendly_page_and_a_new_one_works(clock, client, stripe_api, customer):
    old = path_of(customer_links.card_update_url(customer))
    customer_portal_links_revoke(customer=customer)
    response = client.get(old)
    assert_refused(response, status=404, customer=customer)
    assert sessions_created(stripe_api) == []
    assert client.get(path_of(customer_links.card_update_url(customer))).status_code == 302


def test_a_customer_unknown_to_the_billing_system_gets_a_clear_page(clock, client, stripe_api):
    customer = CustomerFactory(external_id=None)
    response = client.get(path_of(customer_links.card_update_url(customer)))
    assert response.status_code == 200
    assert "cannot be updated online" in response.content.decode()
    assert sessions_created(stripe_api) == []


def test_a_stripe_failure_gets_a_try_again_page(clock, client, stripe_api, customer):
    del stripe_api.customers["cus_P1"]  # Stripe answers 400 "No such customer"
    response = client.get(path_of(customer_links.card_update_url(customer)))
    assert response.status_code == 503
    assert "again in a few minutes" in response.content.decode()


def test_the_done_page_thanks_or_offers_to_try_again(clock, client, stripe_api, customer):
    token = customer_links.card_update_token(customer)
    done = reverse("portal:card_done", args=[token])
    assert "Thank you" in client.get(done + "?updated=1").content.decode()
    cancelled = client.get(done).content.decode()
    assert "not changed" in cancelled and reverse("portal:card", args=[token]) in cancelled
    # Opened on the link's last day, finished after it expired: still thanked.
    clock.shift(customer_links.CARD_UPDATE_LINK_MAX_AGE + dt.timedelta(hours=2))
    assert "Thank you" in client.get(done + "?updated=1").content.decode()
    assert client.get(reverse("portal:card", args=[token])).status_code == 410


def test_a_disputing_customer_is_told_their_new_card_is_kept_but_not_charged(clock, client, stripe_api, customer):
    Dispute.objects.create(customer=customer, external_id="dp_1", opened_at=NOW)
    done = reverse("portal:card_done", args=[customer_links.card_update_token(customer)])
    page = client.get(done + "?updated=1").content.decode()
    assert "nothing will be charged to them" in page and "will be taken with them shortly" not in page


def test_messages_carry_the_signed_portal_link(clock, stripe_api, customer):
    context = message_context(customer=customer, currency="EUR", invoices=[], today=NOW.date())
    token = path_of(context["card_update_url"]).split("/")[3]
    assert context["card_update_url"] == SITE_URL + reverse("portal:card", args=[token])
    assert customer_links.read_card_update_token(token) == customer


# ---------------------------------------------------------------------------------------------
# The sandbox (no Stripe key): `make run` shows a new card without Stripe


@pytest.fixture
def overdue_case(clock, sandbox):
    standard_policy()
    customer = CustomerFactory(external_id=None, default_payment_method="pm_card_chargeDeclinedInsufficientFunds")
    InvoiceFactory(customer=customer, number="INV-SBX", due_on=NOW.date() - dt.timedelta(days=10))
    cases_open_overdue(now=NOW)
    return Case.objects.get(customer=customer)


def test_the_sandbox_changes_the_card_and_retries_at_once(
    client, overdue_case, run_jobs, django_capture_on_commit_callbacks
):
    customer = overdue_case.customer
    Case.objects.filter(pk=overdue_case.pk).update(payment_problem=Case.PaymentProblem.NEW_CARD)
    response = client.get(path_of(customer_links.card_update_url(customer)))
    assert response.status_code == 302
    page = client.get(path_of(response["Location"]) + "?" + urlparse(response["Location"]).query)
    content = page.content.decode()
    assert "SANDBOX" in content and "pm_card_visa" in content and "pm_card_chargeDeclinedInsufficientFunds" in content
    action = reverse("portal:card_sandbox", args=[customer_links.card_update_token(customer)])
    assert f'action="{action}"' in content

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(action, {"payment_method": "pm_card_visa"})
    assert response.status_code == 302
    assert response["Location"].endswith("/done/?updated=1")
    customer.refresh_from_db()
    assert customer.default_payment_method == "pm_card_visa"
    assert customer.card_expires_on > NOW.date() + dt.timedelta(days=365)
    overdue_case.refresh_from_db()
    assert overdue_case.payment_problem == "", "a new card stops the card-update asks at once, sandbox or Stripe"
    retry = PaymentRetry.objects.get()
    assert (retry.status, retry.decision, retry.scheduled_for) == ("scheduled", "new_card", NOW)
    assert [job.func_name for job in django_rq.get_queue("default").jobs] == [
        "dunning_site.collections.jobs.retries_perform"
    ]

    run_jobs()
    assert Invoice.objects.get(number="INV-SBX").status == Invoice.Status.PAID
    overdue_case.refresh_from_db()
    assert overdue_case.status == Case.Status.RESOLVED


def test_the_sandbox_refuses_a_card_it_does_not_know(client, overdue_case):
    customer = overdue_case.customer
    action = reverse("portal:card_sandbox", args=[customer_links.card_update_token(customer)])
    response = client.post(action, {"payment_method": "pm_card_real_looking"})
    assert response.status_code == 400
    assert card_update.CHOOSE_A_CARD in response.content.decode()
    customer.refresh_from_db()
    assert customer.default_payment_method == "pm_card_chargeDeclinedInsufficientFunds"
    assert not PaymentRetry.objects.exists()


def test_the_sandbox_does_not_exist_when_stripe_is_configured(clock, client, stripe_api, customer):
    token = customer_links.card_update_token(customer)
    action = reverse("portal:card_sandbox", args=[token])
    assert client.post(action, {"payment_method": "pm_card_visa"}).status_code == 404
    page = client.get(reverse("portal:card_done", args=[token]) + "?sandbox=1").content.decode()
    assert "SANDBOX" not in page
    customer.refresh_from_db()
    assert customer.default_payment_method == ""


def test_the_sandbox_needs_a_valid_link(client, overdue_case):
    customer = overdue_case.customer
    token = customer_links.card_update_token(customer)
    customer_portal_links_revoke(customer=customer)
    response = client.post(reverse("portal:card_sandbox", args=[token]), {"payment_method": "pm_card_visa"})
    assert_refused(response, status=404, customer=customer)
    assert not PaymentRetry.objects.exists()


# ---------------------------------------------------------------------------------------------
# No Stripe key in production (DEBUG off, PAYMENTS_SANDBOX unset): payments are "not configured".
# Whoever holds a customer's card link must not be able to pick "Visa 4242" and have the next tick
# mark the customer's invoices paid.


@pytest.fixture
def case_with_a_test_card(clock, payments_not_configured):
    """A customer whose card on file is a sandbox test card (left from a demo, or typed in by someone)."""
    standard_policy()
    customer = CustomerFactory(external_id=None, default_payment_method="pm_card_visa")
    InvoiceFactory(customer=customer, number="INV-OFF", due_on=NOW.date() - dt.timedelta(days=10))
    cases_open_overdue(now=NOW)
    return Case.objects.get(customer=customer)


def test_without_stripe_or_the_sandbox_the_card_link_says_online_card_updates_are_unavailable(
    client, case_with_a_test_card
):
    token = customer_links.card_update_token(case_with_a_test_card.customer)
    response = client.get(reverse("portal:card", args=[token]))
    assert response.status_code == 200
    content = response.content.decode()
    assert "cannot be updated online" in content
    assert "SANDBOX" not in content and "pm_card_visa" not in content
    done = client.get(reverse("portal:card_done", args=[token]) + "?sandbox=1").content.decode()
    assert "SANDBOX" not in done and "pm_card_visa" not in done


@pytest.mark.parametrize("query", ["?updated=1", "", "?sandbox=1"])
def test_without_stripe_or_the_sandbox_the_page_after_the_card_page_claims_nothing_was_saved(
    client, case_with_a_test_card, query
):
    token = customer_links.card_update_token(case_with_a_test_card.customer)
    response = client.get(reverse("portal:card_done", args=[token]) + query)
    assert response.status_code == 200
    content = response.content.decode()
    assert "cannot be updated online" in content and "Nothing was changed" in content
    assert "Thank you" not in content and "saved" not in content and "SANDBOX" not in content


def test_the_page_after_the_card_page_claims_nothing_for_a_customer_stripe_does_not_know(clock, client, stripe_api):
    token = customer_links.card_update_token(CustomerFactory(external_id=None))
    content = client.get(reverse("portal:card_done", args=[token]) + "?updated=1").content.decode()
    assert "cannot be updated online" in content
    assert "Thank you" not in content and "saved" not in content


@pytest.mark.parametrize("method", ["get", "post"])
def test_without_stripe_or_the_sandbox_the_sandbox_url_answers_404_and_changes_nothing(
    client, case_with_a_test_card, django_capture_on_commit_callbacks, method
):
    customer = case_with_a_test_card.customer
    Customer.objects.filter(pk=customer.pk).update(default_payment_method="pm_card_chargeDeclinedInsufficientFunds")
    action = reverse("portal:card_sandbox", args=[customer_links.card_update_token(customer)])
    with django_capture_on_commit_callbacks(execute=True):
        response = getattr(client, method)(action, {"payment_method": "pm_card_visa"})
    assert response.status_code == 404
    customer.refresh_from_db()
    assert customer.default_payment_method == "pm_card_chargeDeclinedInsufficientFunds"
    assert PaymentRetry.objects.count() == 0
    assert django_rq.get_queue("default").count == 0
