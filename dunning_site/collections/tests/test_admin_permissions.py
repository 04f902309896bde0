"""Every action of every registered ModelAdmin × viewer / collector / manager / admin (all staff),
generated from the admin's registry: a new action without an entry here fails the test.

For each role: the changelist offers exactly the actions the matrix gives that role, and posting
any other action anyway (every row selected, deletions confirmed) leaves every table as it was.
"""

import datetime as dt
import re

import pytest
import time_machine
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django_otp.plugins.otp_totp.models import TOTPDevice

from dunning_site.accounts.models import BillingEvent, Consent, CreditNote, Payment
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory, UserFactory
from dunning_site.collections import case_core, tick
from dunning_site.collections.models import Case, CustomerRequest, Dispute, PaymentRetry, Promise, ServiceHookDelivery
from dunning_site.collections.plans import plan_offer
from dunning_site.collections.roles import ADMIN, COLLECTOR, MANAGER, VIEWER
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.notifications.models import ContactRules, DeliveryEvent, InboundSms, Message

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
ROLES = [VIEWER, COLLECTOR, MANAGER, ADMIN]
WORKERS = {COLLECTOR, MANAGER, ADMIN}
DECIDERS = {MANAGER, ADMIN}
ADMINS = {ADMIN}
NOBODY: set[str] = set()

# "<app_label>.<model_name>:<action>" → the roles the changelist offers it to. "delete_selected"
# is offered to nobody where deleting would lose history (the delete page is refused there too).
ACTIONS = {
    "accounts.user:delete_selected": ADMINS,  # the database keeps users who acted (PROTECT)
    "accounts.customer:delete_selected": NOBODY,
    "accounts.customer:addresses_usable_again": ADMINS,
    "accounts.customer:revoke_portal_links": ADMINS,
    "accounts.consent:delete_selected": NOBODY,
    "accounts.invoice:delete_selected": NOBODY,
    "accounts.payment:delete_selected": NOBODY,
    "accounts.creditnote:delete_selected": NOBODY,  # a write-off's record, at Stripe too
    "accounts.billingevent:delete_selected": NOBODY,
    "auth.group:delete_selected": ADMINS,
    "axes.accessattempt:delete_selected": ADMINS,  # unlocking someone
    "axes.accessattempt:cleanup_expired_attempts": ADMINS,
    "axes.accesslog:delete_selected": NOBODY,
    "axes.accessfailurelog:delete_selected": NOBODY,
    "otp_totp.totpdevice:delete_selected": ADMINS,  # a lost phone: the owner enrols again
    "notifications.contactrules:delete_selected": ADMINS,  # refused while policies or messages use them
    "notifications.message:delete_selected": NOBODY,
    "notifications.deliveryevent:delete_selected": NOBODY,
    "notifications.inboundsms:delete_selected": NOBODY,  # the evidence of each opt-out and opt-in
    "notifications.messagetemplate:delete_selected": ADMINS,  # refused while a step uses it
    "collections.policy:delete_selected": ADMINS,  # refused while cases use it
    "collections.step:delete_selected": NOBODY,  # steps change on their policy's page
    "collections.case:delete_selected": NOBODY,
    "collections.case:approve_waiting_step": DECIDERS,
    "collections.case:pause_cases": WORKERS,
    "collections.case:resume_cases": WORKERS,
    "collections.case:write_message": WORKERS,
    "collections.caseevent:delete_selected": NOBODY,
    "collections.approval:delete_selected": NOBODY,
    "collections.approval:approve": DECIDERS,
    "collections.approval:reject": DECIDERS,
    "collections.stepexecution:delete_selected": NOBODY,
    "collections.draft:delete_selected": NOBODY,
    "collections.draft:send_now": WORKERS,
    "collections.calltask:delete_selected": NOBODY,
    "collections.paymentretry:delete_selected": NOBODY,
    "collections.dispute:delete_selected": NOBODY,
    "collections.customerrequest:delete_selected": NOBODY,
    "collections.promise:delete_selected": NOBODY,
    "collections.servicehookdelivery:delete_selected": NOBODY,
    "collections.paymentplan:delete_selected": NOBODY,  # what the customer accepted, and how
    "collections.instalment:delete_selected": NOBODY,
}
# Actions that act on one row only (they ask to choose one otherwise).
ONE_ROW = {"write_message"}
# What the second step of a two-step action posts, so that posting it would really act.
CONFIRMATIONS = {"delete_selected": {"post": "yes"}, "write_message": {"compose": "1", "channel": "email"}}


def registered_actions() -> dict[str, tuple]:
    found = {}
    for model, model_admin in admin.site._registry.items():
        for _function, name, _description in model_admin._get_base_actions():
            found[f"{model._meta.app_label}.{model._meta.model_name}:{name}"] = (model, name)
    return found


def test_every_admin_action_is_in_the_matrix():
    assert set(registered_actions()) == set(ACTIONS)


@pytest.fixture
def world():
    """At least one row in every table the admin shows, each action having something to act on."""
    with time_machine.travel(NOW, tick=False):
        policy = standard_policy()
        waiting = InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=21), total=9_900)
        reminded = InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=4), total=5_000)
        paused = InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=11), total=7_000)
        tick.tick()
        case_core.case_pause(
            case=Case.objects.get(customer=paused.customer), until=None, reason="Customer on holiday", user=None
        )
        reminder = Message.objects.filter(customer=reminded.customer).get()
        DeliveryEvent.objects.create(message=reminder, kind="delivered", provider_event_id="evt-1")
        case = Case.objects.get(customer=reminded.customer)
        draft = Message.objects.create(
            customer=case.customer,
            channel="email",
            to_address=case.customer.email,
            subject="About your invoice",
            body="Hello",
            status=Message.Status.DRAFT,
            idempotency_key="world-draft",
        )
        call = Message.objects.create(
            customer=case.customer, channel="call", body="Call script", idempotency_key="world-call"
        )
        case.messages.add(draft, call)
        failed = Payment.objects.create(invoice=waiting, amount=9_900, status=Payment.Status.FAILED)
        PaymentRetry.objects.create(
            invoice=waiting,
            scheduled_for=NOW + dt.timedelta(days=3),
            decision="insufficient_funds",
            reason="Next payday",
            attempt=1,
            payment=failed,
        )
        planner = UserFactory(username="planner")  # a plan is offered before the customer disputes
        plan_offer(case=case, user=planner, total=5_000, instalment_count=2, interval="monthly", first_date=NOW.date())
        Dispute.objects.create(customer=case.customer, external_id="dp_world", opened_at=NOW)
        CustomerRequest.objects.create(customer=case.customer, case=case, kind="question", reason="other", text="?")
        Promise.objects.create(
            case=case,
            customer=case.customer,
            promised_on=NOW.date() - dt.timedelta(days=1),
            amount=1_000,
            currency=case.currency,
            source=Promise.Source.CALL,
            status=Promise.Status.BROKEN,
            resolved_at=NOW,
        )
        ServiceHookDelivery.objects.create(
            case=case, action="suspend", url="https://product.example/hooks", payload={"customer": "x"}
        )
        BillingEvent.objects.create(event_id="evt_world", type="invoice.paid", created=NOW, payload={})
        CreditNote.objects.create(invoice=paused, amount=1_000, reason="Goodwill")
        bounced = CustomerFactory(email_unusable_since=NOW, email_unusable_reason="550 User unknown")
        Consent.objects.create(customer=bounced, channel="sms", granted=True, source="staff")
        ContactRules.objects.create(name="Quiet weekends")
        InboundSms.objects.create(
            provider_id="SM" + "0" * 32, sender="+33612345678", keyword="STOP", effect="opted_out"
        )
        Group.objects.create(name="Temporary staff")
        someone = UserFactory(username="someone")
        TOTPDevice.objects.create(user=someone, name="Phone", confirmed=True)
        failed_sign_in("someone")
        AccessLog.objects.create(username="someone", ip_address="203.0.113.9", user_agent="curl", path_info="/")
        AccessFailureLog.objects.create(username="x", ip_address="203.0.113.9", user_agent="curl", path_info="/")
    return policy


def failed_sign_in(username: str) -> AccessAttempt:
    return AccessAttempt.objects.create(
        username=username,
        ip_address="203.0.113.9",
        user_agent="curl",
        get_data="",
        post_data="",
        http_accept="*/*",
        path_info="/accounts/login/",
        failures_since_start=2,
    )


def staff(client, role: str):
    user = UserFactory(username=f"staff-{role.lower()}", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    # Signing in clears expired attempts: one made after it gives the clean-up something to do.
    expired = failed_sign_in("long-ago")
    AccessAttempt.objects.filter(pk=expired.pk).update(attempt_time=NOW - dt.timedelta(days=2))
    return user


def snapshot() -> dict[str, list[dict]]:
    """Every row of every table but the sessions (signing in writes there)."""
    return {
        model._meta.label: list(model._base_manager.order_by("pk").values())
        for model in apps.get_models(include_auto_created=True)
        if model._meta.managed and not model._meta.proxy and model is not Session
    }


def changelist(model) -> str:
    return f"/admin/{model._meta.app_label}/{model._meta.model_name}/"


def offered(client, model) -> set[str] | None:
    """The actions the changelist offers, or None when the role may not open it."""
    response = client.get(changelist(model))
    if response.status_code == 403:
        return None
    assert response.status_code == 200, (model, response.status_code)
    page = response.content.decode()
    selects = re.findall(r'<select name="action"[^>]*>(.*?)</select>', page, flags=re.S)
    return {value for select in selects for value in re.findall(r'<option value="([^"]+)"', select)}


@pytest.mark.parametrize("role", ROLES)
def test_each_role_is_offered_exactly_the_actions_of_the_matrix(client, world, role):
    staff(client, role)
    actions = registered_actions()
    problems = []
    for model in {model for model, _name in actions.values()}:
        expected = {name for key, (m, name) in actions.items() if m is model and role in ACTIONS[key]}
        shown = offered(client, model)
        if shown is None:
            if expected:
                problems.append(f"{model._meta.label}: changelist refused, but the matrix offers {sorted(expected)}")
            continue
        if shown != expected:
            problems.append(f"{model._meta.label}: offered {sorted(shown)}, the matrix says {sorted(expected)}")
    assert problems == []


def post_action(client, model, name: str):
    rows = list(model._default_manager.order_by("pk").values_list("pk", flat=True))
    assert rows, f"the world has no {model._meta.label} to act on"
    selected = rows[:1] if name in ONE_ROW else rows
    data = {"action": name, "_selected_action": selected, **CONFIRMATIONS.get(name, {})}
    return client.post(changelist(model), data)


@pytest.mark.parametrize("role", ROLES)
def test_posting_an_action_the_role_is_not_offered_changes_nothing(client, world, role):
    staff(client, role)
    problems = []
    before = snapshot()
    for key, (model, name) in sorted(registered_actions().items()):
        if role in ACTIONS[key]:
            continue
        with time_machine.travel(NOW + dt.timedelta(hours=1), tick=False):
            response = post_action(client, model, name)
        assert response.status_code in (200, 302, 403), (key, response.status_code)
        after = snapshot()
        if after != before:
            changed = sorted(label for label in after if after[label] != before[label])
            problems.append(f"{key} changed {changed}")
            before = after
    assert problems == []


@pytest.mark.parametrize(
    "key",
    sorted(key for key, roles in ACTIONS.items() if roles and not key.endswith(":delete_selected")),
)
def test_the_same_post_by_a_role_the_matrix_allows_does_act(client, world, key):
    """The probe above could not fail if the actions did nothing anyway: the least role allowed
    each action changes something with the very same post."""
    role = next(role for role in ROLES if role in ACTIONS[key])
    staff(client, role)
    model, name = registered_actions()[key]
    before = snapshot()
    with time_machine.travel(NOW + dt.timedelta(hours=1), tick=False):
        post_action(client, model, name)
    assert snapshot() != before


HISTORY = sorted(
    key.removesuffix(":delete_selected")
    for key, roles in ACTIONS.items()
    if key.endswith(":delete_selected") and not roles
)


@pytest.mark.parametrize("label", HISTORY)
def test_history_is_not_deleted_one_by_one_either_even_by_a_superuser(admin_client, world, label):
    model = apps.get_model(label)
    row = model._default_manager.order_by("pk").first()
    assert row is not None, f"the world has no {label}"
    page = f"{changelist(model)}{row.pk}/delete/"
    assert admin_client.get(page).status_code == 403
    assert admin_client.post(page, {"post": "yes"}).status_code == 403
    assert model._default_manager.filter(pk=row.pk).exists()
