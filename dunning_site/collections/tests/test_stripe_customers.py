"""What the engine learns of a customer from Stripe (issue 10, point 2): time zone, language, card.

Signed customer.* and payment_method.* events into /webhooks/stripe/, `manage.py stripe_sync`
against the local fake Stripe, and what follows in the outbox and on the case page."""

import datetime as dt
import io
import zoneinfo

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.core import mail
from django.core.management import call_command

from dunning_site.accounts.models import Customer, User
from dunning_site.accounts.tests.factories import InvoiceFactory
from dunning_site.accounts.time_zones import zones_of_country
from dunning_site.collections.predunning import predunning_run
from dunning_site.collections.roles import COLLECTOR
from dunning_site.collections.tests import stripe_fake
from dunning_site.collections.tests.factories import PolicyFactory, standard_policy
from dunning_site.collections.tick import tick
from dunning_site.notifications.models import Message
from dunning_site.notifications.rules import NO_HOURS_RECHECK, TIME_ZONE_UNKNOWN
from dunning_site.notifications.services import messages_create

pytestmark = pytest.mark.django_db

# Tuesday 10 March 2026, 14:00 UTC: 01:00 on Wednesday in Sydney, 22:00 in Perth, 10:00 in New York.
NOW = dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.UTC)
OHIO = {"line1": "1 Main St", "city": "Columbus", "state": "OH", "postal_code": "43004", "country": "US"}
BERLIN = {"line1": "Unter den Linden 1", "city": "Berlin", "state": None, "postal_code": "10117", "country": "DE"}
AUSTRALIA = {"line1": "1 George St", "city": None, "state": None, "postal_code": None, "country": "AU"}


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def customer_event(event_type: str = "customer.updated", *, event_id: str = "evt_cus_1", **fields) -> dict:
    obj = stripe_fake.resource("customer", id="cus_1", email="ada@example.com") | {"name": "Ada Lovelace"} | fields
    return stripe_fake.event(event_type, obj, event_id=event_id)


def card(pm_id: str = "pm_1", *, exp_month: int = 8, exp_year: int = 2030, country: str = "US", address=None) -> dict:
    method = stripe_fake.resource("payment_method", id=pm_id, customer="cus_1")
    method["card"] |= {"brand": "mastercard", "last4": "4444", "exp_month": exp_month, "exp_year": exp_year}
    method["card"]["country"] = country
    method["billing_details"]["address"] = address or {"country": None, "state": None}
    return method


def email(customer: Customer, key: str = "test:1") -> Message:
    (message,) = messages_create(
        [
            Message(
                customer=customer,
                channel="email",
                to_address=customer.email,
                subject="Your invoice INV-1 is overdue",
                body="Please pay €120.00.\n",
                idempotency_key=key,
            )
        ]
    )
    return message


def local(moment: dt.datetime, zone: str) -> dt.datetime:
    return moment.astimezone(zoneinfo.ZoneInfo(zone))


def daytime(moment: dt.datetime, zone: str) -> bool:
    there = local(moment, zone)
    return there.weekday() != 6 and dt.time(8) <= there.time() < dt.time(20)


# ---------------------------------------------------------------------------------------------
# The time zone


def test_an_address_in_ohio_gives_new_york_exactly(clock, stripe_api, deliver):
    deliver(customer_event("customer.created", address=OHIO))
    customer = Customer.objects.get(external_id="cus_1")
    assert (customer.time_zone, customer.time_zone_source, customer.time_zone_candidates) == (
        "America/New_York",
        "address",
        [],
    )
    assert not customer.time_zone_is_guess


def test_an_address_in_germany_gives_berlin(clock, stripe_api, deliver):
    deliver(customer_event(address=BERLIN))
    customer = Customer.objects.get(external_id="cus_1")
    assert (customer.time_zone, customer.time_zone_source, customer.time_zone_candidates) == (
        "Europe/Berlin",
        "address",
        [],
    )


def test_the_business_metadata_wins_over_the_address_and_a_bad_one_is_ignored(clock, stripe_api, deliver):
    deliver(customer_event(address=OHIO, metadata={"time_zone": "Asia/Tokyo"}))
    customer = Customer.objects.get(external_id="cus_1")
    assert (customer.time_zone, customer.time_zone_source) == ("Asia/Tokyo", "stripe_metadata")

    deliver(customer_event(address=OHIO, metadata={"time_zone": "Mars/Olympus"}, event_id="evt_cus_2"))
    customer.refresh_from_db()
    assert (customer.time_zone, customer.time_zone_source) == ("America/New_York", "address")


def test_the_shipping_address_then_the_cards_country_are_used_when_there_is_no_address(clock, stripe_api, deliver):
    deliver(customer_event(shipping={"address": BERLIN, "name": "Ada"}))
    assert Customer.objects.get().time_zone == "Europe/Berlin"

    stripe_api.payment_methods["pm_jp"] = card("pm_jp", country="JP")
    deliver(customer_event(shipping={}, invoice_settings={"default_payment_method": "pm_jp"}, event_id="evt_cus_2"))
    customer = Customer.objects.get()
    assert (customer.time_zone, customer.time_zone_source) == ("Asia/Tokyo", "card_country")


def test_a_zone_set_by_staff_is_never_replaced_by_stripe(clock, stripe_api, deliver, admin_client):
    deliver(customer_event(address=OHIO))
    customer = Customer.objects.get()
    response = admin_client.post(
        f"/admin/accounts/customer/{customer.pk}/change/",
        {
            "external_id": "cus_1",
            "name": "Ada Lovelace",
            "email": "ada@example.com",
            "time_zone": "Europe/Lisbon",
            "language": "pt",
            "segment": "standard",
            "consents-TOTAL_FORMS": "0",
            "consents-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    customer.refresh_from_db()
    assert (customer.time_zone, customer.time_zone_source, customer.language_source) == (
        "Europe/Lisbon",
        "staff",
        "staff",
    )

    deliver(customer_event(address=BERLIN, preferred_locales=["de-DE"], event_id="evt_cus_2"))
    customer.refresh_from_db()
    assert (customer.time_zone, customer.time_zone_source, customer.language) == ("Europe/Lisbon", "staff", "pt")


def test_australia_without_a_state_waits_for_an_hour_that_is_daytime_in_perth_and_sydney_both(
    clock, stripe_api, deliver, run_jobs, django_capture_on_commit_callbacks
):
    deliver(customer_event(address=AUSTRALIA))
    customer = Customer.objects.get()
    assert customer.time_zone_source == "address"
    assert customer.time_zone == "Australia/Sydney"  # the most populous, shown and used for planning
    assert {"Australia/Perth", "Australia/Sydney", "Australia/Brisbane"} <= set(customer.time_zone_candidates)
    assert set(customer.time_zone_candidates) <= set(zones_of_country("AU"))
    assert customer.time_zone_is_guess

    # 14:00 UTC is 22:00 in Perth and 01:00 in Sydney: night in both.
    with django_capture_on_commit_callbacks(execute=True):
        message = email(customer)
    run_jobs()
    message.refresh_from_db()
    assert message.status == "queued" and mail.outbox == []
    assert "their time zone is a guess" in message.deferred_reason
    for zone in customer.time_zone_candidates:
        assert daytime(message.send_after, zone), zone
    # Wednesday 00:00 UTC: 08:00 in Perth, 11:00 in Sydney, the first moment daytime in every candidate.
    assert message.send_after == dt.datetime(2026, 3, 11, 0, 0, tzinfo=dt.UTC)

    clock.move_to(message.send_after)
    run_jobs()
    message.refresh_from_db()
    assert message.status == "sent" and len(mail.outbox) == 1
    assert local(message.sent_at, "Australia/Perth").hour == 8
    assert local(message.sent_at, "Australia/Sydney").hour == 11


def test_a_customer_whose_country_is_unknown_is_never_emailed_and_the_outbox_says_why(
    clock, stripe_api, deliver, run_jobs, django_capture_on_commit_callbacks, admin_client
):
    deliver(customer_event("customer.created"))
    customer = Customer.objects.get()
    assert (customer.time_zone_source, customer.time_zone_candidates) == ("unknown", [])
    with django_capture_on_commit_callbacks(execute=True):
        message = email(customer)
    # Three days of deliveries, every moment the job looks again: never sent, never dropped.
    for _ in range(6):
        run_jobs()
        message.refresh_from_db()
        assert (message.status, message.deferred_reason) == ("queued", TIME_ZONE_UNKNOWN)
        assert message.send_after == dt.datetime.now(dt.UTC) + NO_HOURS_RECHECK
        clock.move_to(message.send_after)
    assert mail.outbox == []

    # Staff set the zone: the next look (Friday 14:00 UTC, 15:00 in Paris) sends it.
    Customer.objects.filter(pk=customer.pk).update(time_zone="Europe/Paris", time_zone_source="staff")
    run_jobs()
    message.refresh_from_db()
    assert (message.status, message.sent_at) == ("sent", dt.datetime(2026, 3, 13, 14, 0, tzinfo=dt.UTC))
    assert len(mail.outbox) == 1


def test_the_case_page_says_the_zone_is_a_guess_and_which_zones_are_assumed(clock, stripe_api, deliver, client):
    deliver(customer_event(address=AUSTRALIA))
    customer = Customer.objects.get()
    standard_policy()
    InvoiceFactory(customer=customer, due_on=NOW.date() - dt.timedelta(days=12), total=45_000, currency="AUD")
    tick()
    case = customer.cases.get()
    collector = User.objects.create_user("collector", password="pw")
    collector.groups.add(Group.objects.get(name=COLLECTOR))
    client.force_login(collector)
    page = client.get(f"/cases/{case.pk}/").content.decode()
    assert "The time zone is a guess" in page
    assert "Australia/Perth" in page and "Australia/Sydney" in page


# ---------------------------------------------------------------------------------------------
# Language and card


def test_preferred_locales_give_the_language_the_product_speaks(clock, stripe_api, deliver):
    deliver(customer_event("customer.created", preferred_locales=["de-DE"]))
    assert Customer.objects.get().language == "de"
    deliver(customer_event(preferred_locales=["xx-XX", "pt-BR"], event_id="evt_cus_2"))
    assert Customer.objects.get().language == "pt-BR"


def test_an_updated_card_expiry_is_learned_and_pre_dunning_warns(clock, stripe_api, deliver):
    PolicyFactory(pre_dunning_days=300)
    stripe_api.payment_methods["pm_1"] = card("pm_1", exp_month=8, exp_year=2030, address=OHIO)
    deliver(customer_event(invoice_settings={"default_payment_method": "pm_1"}))
    customer = Customer.objects.get()
    assert (customer.card_brand, customer.card_last4, customer.card_expires_on) == (
        "mastercard",
        "4444",
        dt.date(2030, 8, 31),
    )
    assert (customer.time_zone, customer.time_zone_source) == ("America/New_York", "address")
    assert predunning_run(now=NOW) == 0  # 2030 is far away

    # The card network sent a new expiry (Stripe's card account updater), sooner than the policy's window.
    deliver(stripe_fake.event("payment_method.updated", card("pm_1", exp_month=12, exp_year=2026), event_id="evt_pm"))
    customer.refresh_from_db()
    assert customer.card_expires_on == dt.date(2026, 12, 31)
    assert predunning_run(now=NOW) == 1
    warning = Message.objects.get(idempotency_key__startswith="predunning:")
    assert warning.customer == customer

    # Another card of the customer's, not the one invoices are charged to, changes nothing.
    other = card("pm_other", exp_month=1, exp_year=2027)
    deliver(stripe_fake.event("payment_method.automatically_updated", other, event_id="evt_pm_other"))
    customer.refresh_from_db()
    assert customer.card_expires_on == dt.date(2026, 12, 31)


def test_an_attached_card_tells_the_zone_of_a_customer_stripe_knew_nothing_of(clock, stripe_api, deliver):
    deliver(customer_event("customer.created"))
    assert Customer.objects.get().time_zone_source == "unknown"
    stripe_api.payment_methods["pm_2"] = card("pm_2", exp_month=3, exp_year=2027, country="DE")
    deliver(stripe_fake.event("payment_method.attached", card("pm_2", country="DE"), event_id="evt_attached"))
    customer = Customer.objects.get()
    assert (customer.default_payment_method, customer.card_expires_on) == ("pm_2", dt.date(2027, 3, 31))
    assert (customer.time_zone, customer.time_zone_source) == ("Europe/Berlin", "card_country")


# ---------------------------------------------------------------------------------------------
# stripe_sync


def test_stripe_sync_learns_zone_language_and_card_with_the_default_card_expanded(clock, stripe_api):
    stripe_api.payment_methods["pm_1"] = card("pm_1", exp_month=12, exp_year=2026, country="AU")
    stripe_api.customers["cus_1"] = stripe_fake.resource(
        "customer",
        id="cus_1",
        email="ada@example.com",
        address={"country": "US", "state": "Ohio"},
        preferred_locales=["fr-FR"],
        invoice_settings={"default_payment_method": "pm_1"},
    )
    stripe_api.customers["cus_2"] = stripe_fake.resource(
        "customer", id="cus_2", email="bob@example.com", phone="+61 8 9123 4567"
    )
    call_command("stripe_sync", "--customers-only", stdout=io.StringIO(), stderr=io.StringIO())
    ada = Customer.objects.get(external_id="cus_1")
    assert (ada.time_zone, ada.time_zone_source, ada.language) == ("America/New_York", "address", "fr")
    assert (ada.card_brand, ada.card_last4, ada.card_expires_on) == ("mastercard", "4444", dt.date(2026, 12, 31))
    # One listing, the cards in it: no request per customer.
    assert not [path for _, path, _ in stripe_api.requests if path.startswith("/v1/payment_methods")]
    bob = Customer.objects.get(external_id="cus_2")
    # A Perth number (08): the phone's zones, Perth's clock first.
    assert (bob.time_zone, bob.time_zone_source) == ("Australia/Perth", "phone")


def test_an_older_customer_event_arriving_late_never_brings_back_the_old_address_or_zone(clock, stripe_api, deliver):
    """Stripe sends events in any order: the customer is re-read from Stripe, so what it says now wins."""
    now_at_stripe = stripe_fake.resource("customer", id="cus_1") | {
        "name": "New Name",
        "email": "new@example.com",
        "address": BERLIN,
        "metadata": {},
    }
    stripe_api.customers["cus_1"] = now_at_stripe
    deliver(stripe_fake.event("customer.updated", now_at_stripe, event_id="evt_new"))
    older = customer_event("customer.created", event_id="evt_old", name="Old Name", address=OHIO)
    older["created"] = int((NOW - dt.timedelta(minutes=2)).timestamp())
    deliver(older)

    customer = Customer.objects.get(external_id="cus_1")
    assert (customer.name, customer.email, customer.time_zone) == ("New Name", "new@example.com", "Europe/Berlin")


def test_a_customer_stripe_no_longer_has_is_learned_from_the_event_itself(clock, stripe_api, deliver):
    deliver(customer_event(address=OHIO))
    assert Customer.objects.get(external_id="cus_1").time_zone == "America/New_York"


def test_what_a_customer_typed_at_checkout_never_loses_the_update(clock, stripe_api, deliver, client):
    """Signed events carry what customers typed: a name longer than ours, a NUL character, values of
    an unexpected type. The customer is learned all the same; nothing answers 500."""
    odd = customer_event(
        "customer.created",
        name="A" * 230 + "\x00",
        email="not an address",
        preferred_locales=[None, 5, "de-DE"],
        address={"country": ["US"], "state": {"x": 1}},
        shipping={"address": "Berlin"},
        metadata={"time_zone": "localtime"},
    )
    deliver(odd)
    customer = Customer.objects.get(external_id="cus_1")
    assert (len(customer.name), customer.email, customer.language) == (200, "", "de")
    # "localtime" names no place and the address was none: only the locale's region is left, a guess.
    assert (customer.time_zone_source, customer.time_zone) == ("guess", "Europe/Berlin")

    deliver(customer_event(event_id="evt_factory", metadata={"time_zone": "Factory"}, address=BERLIN))
    assert Customer.objects.get(external_id="cus_1").time_zone == "Europe/Berlin"
