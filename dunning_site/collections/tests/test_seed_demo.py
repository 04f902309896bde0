"""`manage.py seed_demo`: a book with a case at every rung of the ladder, exactly as planned, seeded once."""

import datetime as dt
import io
import zoneinfo

import pytest
import time_machine
from django.core.management import CommandError, call_command

from dunning_site.accounts.models import Consent, Customer, Invoice, Payment, User
from dunning_site.accounts.tests.factories import CustomerFactory
from dunning_site.collections import defaults, demo_book
from dunning_site.collections.management.commands.seed_demo import ALREADY_SEEDED, BOOK_EXISTS, DEBUG_REQUIRED
from dunning_site.collections.models import Approval, Case, CaseEvent, Policy, Step
from dunning_site.notifications import rules
from dunning_site.notifications.models import Message, MessageTemplate

pytestmark = pytest.mark.django_db

# An afternoon in UTC: today's 09:00 has passed in every zone but the Americas' west, so some of
# today's reminders are already due and wait for the worker.
NOW = dt.datetime(2026, 3, 16, 20, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def development(settings):
    """The demo book is seeded in development, as `make run` does (DEBUG=true)."""
    settings.DEBUG = True


def seed(*args: str) -> str:
    out = io.StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def row_counts() -> dict[str, int]:
    models = (Customer, Consent, Invoice, Payment, User, Policy, MessageTemplate, Case, CaseEvent, Approval, Message)
    return {model.__name__: model.objects.count() for model in models}


def test_it_seeds_a_book_with_a_case_at_every_rung_of_the_ladder_exactly_as_planned():
    output = seed("--seed", "7")

    assert 180 <= Customer.objects.count() <= 220
    assert 900 <= Invoice.objects.count() <= 1_100
    currencies = set(Invoice.objects.values_list("currency", flat=True))
    assert {"JPY", "KWD"} <= currencies
    assert len(currencies) >= 4
    assert Invoice.objects.filter(status=Invoice.Status.PAID).count() > Invoice.objects.count() / 2
    assert Payment.objects.filter(invoice__status=Invoice.Status.OPEN).exists(), "some invoices are partly paid"
    assert Consent.objects.filter(channel="sms", granted=True, source="signup").exists()

    statuses = set(Case.objects.values_list("status", flat=True))
    assert {Case.Status.OPEN, Case.Status.AWAITING_APPROVAL, Case.Status.RESOLVED} <= statuses
    for position in (1, 2, 3):
        assert Case.objects.filter(current_step__position=position).exists(), f"no case past step {position}"
    waiting = Approval.objects.filter(status=Approval.Status.PENDING)
    assert waiting.filter(step__action=Step.Action.FINAL_NOTICE).exists()
    assert waiting.filter(step__action=Step.Action.SUSPEND_SERVICE).exists()
    assert Approval.objects.filter(status=Approval.Status.APPROVED, decided_by__username="manager").exists()
    assert Case.objects.filter(status=Case.Status.RESOLVED, current_step__isnull=False).exists(), (
        "some customers paid after a reminder"
    )

    sent = Message.objects.filter(status=Message.Status.SENT)
    assert sent.exists()
    assert not sent.filter(sent_at__date=NOW.date()).exists(), "today's messages are the worker's to send"
    assert Message.objects.filter(status=Message.Status.QUEUED, created_at=NOW).exists()
    assert CaseEvent.objects.filter(type="collections.message.sent").count() == sent.count()
    # The replayed history is stamped with the replayed time, not with the moment the command ran.
    approved_at = set(CaseEvent.objects.filter(type="collections.approval.approved").values_list("at", flat=True))
    assert NOW not in approved_at
    assert min(approved_at) < NOW - dt.timedelta(days=2)

    assert set(Invoice.objects.filter(currency="JPY").values_list("customer__time_zone", flat=True)) == {"Asia/Tokyo"}
    yen = Invoice.objects.filter(currency="JPY", customer__segment="self-serve").values_list("total", flat=True)
    assert 3_900 <= min(yen) <= max(yen) <= 3 * 21_800, "yen have no minor unit"
    dinars = Invoice.objects.filter(currency="KWD", customer__segment="self-serve").values_list("total", flat=True)
    assert 9_000 <= min(dinars) <= max(dinars) <= 3 * 45_000, "a dinar is 1,000 fils"

    planned = demo_book.build_book(seed=7, today=NOW.date()).digest()
    stored = sorted(Invoice.objects.values_list("number", "customer__email", "total", "currency", "due_on"))
    assert stored == planned

    assert User.objects.get(username="admin").is_superuser
    assert User.objects.get(username="manager").is_staff
    assert User.objects.get(username="collector").has_perm("collections.work_case")
    assert not User.objects.get(username="viewer").has_perm("collections.work_case")
    assert "Cases: " in output
    assert "Admin login: http://127.0.0.1:8000/admin/  user: admin  password: admin" in output

    before = row_counts()
    assert ALREADY_SEEDED in seed("--if-empty")
    assert row_counts() == before


def test_it_duns_with_the_default_policy_and_messages_every_install_gets():
    """The demo's ladder and words are dunning_setup's (test_dunning_setup.py checks them)."""
    seed("--seed", "7")
    assert list(Policy.objects.values_list("name", flat=True)) == [defaults.POLICY_NAME]
    stored = set(MessageTemplate.objects.values_list("key", "language"))
    assert stored == {(message.key, message.language) for message in defaults.default_messages()}


def test_it_refuses_to_seed_over_existing_customers():
    CustomerFactory()
    with pytest.raises(CommandError, match="flush it first"):
        seed()
    assert BOOK_EXISTS.startswith("The database already has customers")
    assert not Invoice.objects.exists()


def test_without_debug_it_refuses_and_writes_nothing(settings):
    settings.DEBUG = False
    before = row_counts()
    for args in ((), ("--if-empty",), ("--seed", "7")):
        with pytest.raises(CommandError) as refused:
            seed(*args)
        assert str(refused.value) == DEBUG_REQUIRED
    assert row_counts() == before
    assert not User.objects.filter(username__in=["admin", "collector", "manager", "viewer"]).exists()


def test_a_demo_server_without_debug_says_so_by_name(settings):
    settings.DEBUG = False
    CustomerFactory()
    assert ALREADY_SEEDED in seed("--if-empty", "--allow-without-debug")
    with pytest.raises(CommandError, match="flush it first"):
        seed("--allow-without-debug")  # past the DEBUG guard, stopped by the existing book


def test_the_history_it_replays_keeps_the_contact_rules():
    """What a newcomer reads on the timelines must be what the product does: every message of the
    replayed weeks went inside its customer's contact hours, and no customer got more than the
    weekly cap."""
    seed("--seed", "7")
    sent = Message.objects.filter(sent_at__isnull=False).select_related("customer", "contact_rules")
    assert sent.count() > 50
    for message in sent:
        zone = zoneinfo.ZoneInfo(message.customer.time_zone)
        allowed = rules.next_window_opening(message.sent_at, zone, rules.Rules.of(message.contact_rules))
        assert allowed == message.sent_at, (message.customer.time_zone, message.sent_at.astimezone(zone))
        week = sent.filter(customer=message.customer, sent_at__gt=message.sent_at - rules.WEEK)
        assert (
            week.filter(sent_at__lte=message.sent_at).count()
            <= rules.Rules.of(message.contact_rules).max_contacts_per_week
        )
