"""Pre-dunning: one friendly warning per expiring card, per the policy's pre_dunning_days."""

import datetime as dt

import pytest
import time_machine
from django.core import mail

from dunning_site.accounts.models import Consent
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory
from dunning_site.collections import customer_links
from dunning_site.collections.models import Case
from dunning_site.collections.predunning import predunning_run
from dunning_site.collections.tests.factories import PolicyFactory
from dunning_site.notifications.models import Message
from dunning_site.notifications.tests.factories import MessageTemplateFactory

pytestmark = pytest.mark.django_db

# Tuesday 10 March 2026, 14:00 UTC: 15:00 in Paris, inside the default contact window.
NOW = dt.datetime(2026, 3, 10, 14, 0, tzinfo=dt.UTC)
TODAY = NOW.date()


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def expiring(days: int, **fields):
    return CustomerFactory(
        card_expires_on=TODAY + dt.timedelta(days=days), default_payment_method="pm_card_visa", **fields
    )


def test_a_card_expiring_within_the_policy_window_gets_exactly_one_warning():
    PolicyFactory(pre_dunning_days=30)
    customer = expiring(20, name="Ada Lovelace")
    assert predunning_run(now=NOW) == 1
    assert predunning_run(now=NOW) == 0
    assert predunning_run(now=NOW + dt.timedelta(days=1)) == 0
    message = Message.objects.get()
    assert message.idempotency_key == f"predunning:{customer.pk}:{customer.card_expires_on.isoformat()}"
    assert (message.channel, message.status, message.to_address) == ("email", "queued", customer.email)
    assert message.subject == "Your card on file expires soon"
    assert "Hello Ada Lovelace" in message.body
    assert "March 30, 2026" in message.body
    token = message.body.split("/portal/card/")[1].split("/")[0]
    assert customer_links.read_card_update_token(token) == customer


def test_a_segment_whose_policy_says_0_gets_no_warning():
    PolicyFactory(segment="enterprise", pre_dunning_days=0, priority=1)
    PolicyFactory(pre_dunning_days=30, priority=100)
    enterprise = expiring(20, segment="enterprise")
    standard = expiring(20)
    assert predunning_run(now=NOW) == 1
    assert not Message.objects.filter(customer=enterprise).exists()
    assert Message.objects.filter(customer=standard).count() == 1


def test_a_card_already_expired_is_left_to_dunning():
    PolicyFactory(pre_dunning_days=30)
    expiring(-200)
    expiring(-1)
    assert predunning_run(now=NOW) == 0
    assert not Message.objects.exists()


def test_the_warning_waits_until_the_card_enters_the_window():
    PolicyFactory(pre_dunning_days=30)
    customer = expiring(45)
    assert predunning_run(now=NOW) == 0
    assert predunning_run(now=NOW + dt.timedelta(days=14)) == 0
    assert predunning_run(now=NOW + dt.timedelta(days=15)) == 1
    assert Message.objects.get().customer == customer


def test_the_policy_is_chosen_by_the_latest_invoices_currency():
    PolicyFactory(currency="USD", pre_dunning_days=0, priority=1)
    PolicyFactory(pre_dunning_days=30, priority=100)
    dollars = expiring(10)
    InvoiceFactory(customer=dollars, currency="EUR", status="paid", amount_paid=10_000, due_on=dt.date(2025, 1, 5))
    InvoiceFactory(customer=dollars, currency="USD", status="paid", amount_paid=10_000, due_on=dt.date(2026, 2, 5))
    euros = expiring(10)
    InvoiceFactory(customer=euros, currency="EUR", status="paid", amount_paid=10_000, due_on=dt.date(2026, 2, 5))
    assert predunning_run(now=NOW) == 1
    assert Message.objects.get().customer == euros


def test_a_new_card_gets_its_own_warning_when_it_nears_expiry():
    PolicyFactory(pre_dunning_days=30)
    customer = expiring(20)
    assert predunning_run(now=NOW) == 1
    customer.card_expires_on = TODAY + dt.timedelta(days=25)  # changed, and expiring too
    customer.save()
    assert predunning_run(now=NOW) == 1
    assert Message.objects.count() == 2


def test_customers_who_cannot_or_must_not_be_emailed_are_skipped():
    PolicyFactory(pre_dunning_days=30)
    expiring(20, email="")
    expiring(20, do_not_contact=True, do_not_contact_reason="legal_hold")
    expiring(20, email_unusable_since=NOW, email_unusable_reason="hard bounce")
    assert predunning_run(now=NOW) == 0


def test_customers_already_in_dunning_are_left_to_it():
    policy = PolicyFactory(pre_dunning_days=30)
    customer = expiring(20)
    Case.objects.create(customer=customer, currency="EUR", policy=policy, anchor_due_on=TODAY)
    assert predunning_run(now=NOW) == 0


def test_no_active_policy_means_no_warning():
    PolicyFactory(pre_dunning_days=30, is_active=False)
    expiring(20)
    assert predunning_run(now=NOW) == 0


def test_a_card_expiring_template_replaces_the_built_in_words():
    PolicyFactory(pre_dunning_days=30)
    MessageTemplateFactory(key="fallback-email", subject="Overdue: {{ total_overdue }}")  # never for pre-dunning
    MessageTemplateFactory(key="card-expiring", subject="Time for a new card, {{ customer_name }}")
    MessageTemplateFactory(key="card-expiring", language="fr", subject="Votre carte expire, {{ customer_name }}")
    expiring(20, name="Ada")
    expiring(20, name="Marie", language="fr")
    assert predunning_run(now=NOW) == 2
    assert sorted(Message.objects.values_list("subject", flat=True)) == [
        "Time for a new card, Ada",
        "Votre carte expire, Marie",
    ]


def test_the_warning_goes_through_the_contact_rules(run_jobs, django_capture_on_commit_callbacks):
    PolicyFactory(pre_dunning_days=30)
    allowed = expiring(20)
    opted_out = expiring(20)
    Consent.objects.create(customer=opted_out, channel="email", granted=False, source=Consent.Source.UNSUBSCRIBE)
    with django_capture_on_commit_callbacks(execute=True):
        assert predunning_run(now=NOW) == 2
    run_jobs()
    assert [message.to for message in mail.outbox] == [[allowed.email]]
    assert Message.objects.get(customer=opted_out).status == Message.Status.CANCELLED
