import datetime as dt

import django_rq
import pytest
import time_machine
from django.apps import apps
from django.contrib import admin
from django.contrib.admin.models import LogEntry

from dunning_site.accounts.models import Invoice
from dunning_site.accounts.tests.factories import InvoiceFactory, UserFactory
from dunning_site.collections import policy_forms
from dunning_site.collections.approvals import SELF_APPROVAL
from dunning_site.collections.models import POLICY_DAYS_MAX, POLICY_DAYS_TOO_MANY, Approval, Case, CaseEvent, Step
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.collections.tick import tick

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
CASES = "/admin/collections/case/"


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def waiting_case(clock):
    """A case 21 days overdue, waiting for a manager to approve its final notice."""
    standard_policy()
    InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=21), total=9_900)
    tick()
    case = Case.objects.get()
    assert case.status == Case.Status.AWAITING_APPROVAL
    return case


def test_every_model_has_an_admin_page(admin_client):
    for label in ("accounts", "notifications", "collections"):
        for model in apps.get_app_config(label).get_models():
            if model._meta.auto_created:
                continue
            assert admin.site.is_registered(model), model
            opts = model._meta
            assert admin_client.get(f"/admin/{opts.app_label}/{opts.model_name}/").status_code == 200


def test_the_case_page_shows_the_timeline(admin_client, waiting_case):
    response = admin_client.get(f"{CASES}{waiting_case.pk}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Timeline" in page
    assert "collections.case.opened" in page
    assert "collections.approval.requested" in page
    assert "€99.00" in page


def test_approving_a_waiting_step_from_the_case_list(admin_client, waiting_case, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            CASES, {"action": "approve_waiting_step", "_selected_action": [waiting_case.pk]}, follow=True
        )
    assert "Approved 1 step(s)." in response.content.decode()
    waiting_case.refresh_from_db()
    assert waiting_case.status == Case.Status.OPEN
    assert waiting_case.next_action_at == NOW
    assert Approval.objects.get().status == Approval.Status.APPROVED
    # The case moves on at once: a tick is queued for the worker.
    assert django_rq.get_queue("default").count == 1


def test_nobody_approves_their_own_request(admin_client, admin_user, waiting_case):
    Approval.objects.update(requested_by=admin_user)
    response = admin_client.post(
        "/admin/collections/approval/",
        {"action": "approve", "_selected_action": list(Approval.objects.values_list("pk", flat=True))},
        follow=True,
    )
    assert SELF_APPROVAL in response.content.decode()
    assert Approval.objects.get().status == Approval.Status.PENDING


def test_the_database_refuses_self_approval_too(waiting_case):
    manager = UserFactory()
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError, match="approval_four_eyes"), transaction.atomic():
        Approval.objects.update(requested_by=manager, decided_by=manager)


def test_pausing_and_resuming_from_the_case_list(admin_client, admin_user, waiting_case):
    admin_client.post(CASES, {"action": "pause_cases", "_selected_action": [waiting_case.pk]})
    waiting_case.refresh_from_db()
    assert waiting_case.status == Case.Status.PAUSED
    admin_client.post(CASES, {"action": "resume_cases", "_selected_action": [waiting_case.pk]})
    waiting_case.refresh_from_db()
    assert waiting_case.status == Case.Status.AWAITING_APPROVAL, "it still waits for its approval"
    paused = CaseEvent.objects.get(case=waiting_case, type="collections.case.paused")
    assert paused.user == admin_user and paused.actor == "user"


def test_a_manual_payment_recorded_in_the_admin_resolves_the_case(admin_client, waiting_case):
    invoice = Invoice.objects.get()
    response = admin_client.post(
        "/admin/accounts/payment/add/",
        {
            "invoice": invoice.pk,
            "amount": "99.00",
            "method": "bank_transfer",
            "status": "succeeded",
            "reference": "SEPA 2026-03-02",
            "at_0": "2026-03-02",
            "at_1": "11:00:00",
            "decline_code": "",
            "decline_message": "",
        },
    )
    assert response.status_code == 302
    waiting_case.refresh_from_db()
    assert waiting_case.status == Case.Status.RESOLVED
    assert Approval.objects.get().status == Approval.Status.CANCELLED
    assert CaseEvent.objects.filter(case=waiting_case, type="collections.case.resolved").exists()


def test_an_overpayment_in_the_admin_is_refused(admin_client, waiting_case):
    invoice = Invoice.objects.get()
    response = admin_client.post(
        "/admin/accounts/payment/add/",
        {
            "invoice": invoice.pk,
            "amount": "100.00",
            "method": "cheque",
            "status": "succeeded",
            "at_0": "2026-03-02",
            "at_1": "11:00:00",
        },
    )
    errors = response.context["adminform"].form.errors
    assert "more than the €99.00 left to pay" in errors["amount"][0]
    waiting_case.refresh_from_db()
    assert waiting_case.status == Case.Status.AWAITING_APPROVAL


def test_every_admin_page_says_whether_payments_go_to_stripe_the_sandbox_or_nowhere(admin_client, settings):
    settings.STRIPE_API_KEY, settings.PAYMENTS_SANDBOX = "", True
    assert "Payments: sandbox" in admin_client.get("/admin/").content.decode()
    settings.PAYMENTS_SANDBOX = False  # production without a key: nothing is simulated
    page = admin_client.get("/admin/").content.decode()
    assert "Payments: not configured" in page and "Payments: sandbox" not in page
    settings.STRIPE_API_KEY, settings.PAYMENTS_SANDBOX = "sk_live_configured", True
    page = admin_client.get("/admin/").content.decode()
    assert "Payments: Stripe" in page and "Payments: sandbox" not in page


def test_the_admins_bulk_approval_leaves_write_offs_to_the_approvals_queue(admin_client, waiting_case):
    asker = UserFactory(username="asker")
    write_off = Approval.objects.create(
        case=waiting_case, kind=Approval.Kind.WRITE_OFF, amount=1_000, reason="Goodwill", requested_by=asker
    )
    step = Approval.objects.get(kind=Approval.Kind.STEP)
    admin_client.post(
        "/admin/collections/approval/", {"action": "approve", "_selected_action": [write_off.pk, step.pk]}
    )
    write_off.refresh_from_db()
    step.refresh_from_db()
    assert (write_off.status, step.status) == (Approval.Status.PENDING, Approval.Status.APPROVED)


def change_form_data(response) -> dict:
    """What the admin's change page would post back unchanged: the form's and its inlines' values."""

    def values(form, prefix: str = "") -> dict:
        data = {}
        for name in form.fields:
            value = form[name].value()
            key = f"{prefix}{name}"
            if isinstance(value, bool):
                if value:
                    data[key] = "on"
            elif value is not None:
                data[key] = value
        return data

    data = values(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        data |= {f"{formset.prefix}-{key}": value for key, value in formset.management_form.initial.items()}
        for form in formset.forms:
            data |= values(form, f"{form.prefix}-")
    return data


def step_prefix(response, step) -> str:
    (formset,) = [inline.formset for inline in response.context["inline_admin_formsets"]]
    (form,) = [form for form in formset.forms if form.instance.pk == step.pk]
    return form.prefix


def test_a_step_cases_wait_for_cannot_change_in_the_policy_admin(admin_client, waiting_case):
    step = waiting_case.next_step
    page = f"/admin/collections/policy/{waiting_case.policy_id}/change/"
    form = admin_client.get(page)
    data = change_form_data(form) | {f"{step_prefix(form, step)}-offset_days": "25"}
    response = admin_client.post(page, data)
    assert response.status_code == 200
    assert policy_forms.STEP_IN_USE_CHANGED % {"count": 1} in response.content.decode()
    step.refresh_from_db()
    assert step.offset_days == 20


def test_a_step_cases_wait_for_cannot_be_deleted_in_the_policy_admin(admin_client, waiting_case):
    step = waiting_case.next_step
    page = f"/admin/collections/policy/{waiting_case.policy_id}/change/"
    form = admin_client.get(page)
    data = change_form_data(form) | {f"{step_prefix(form, step)}-DELETE": "on"}
    response = admin_client.post(page, data)
    assert response.status_code == 200
    expected = policy_forms.STEP_IN_USE_DELETED % {"position": 3, "step": step, "count": 1}
    assert expected in response.content.decode()
    assert Step.objects.filter(pk=step.pk).exists()


def test_a_step_nobody_stands_on_is_deleted_through_the_policy_service(admin_client, waiting_case):
    last = waiting_case.policy.steps.get(position=4)
    page = f"/admin/collections/policy/{waiting_case.policy_id}/change/"
    form = admin_client.get(page)
    response = admin_client.post(page, change_form_data(form) | {f"{step_prefix(form, last)}-DELETE": "on"})
    assert response.status_code == 302
    assert list(waiting_case.policy.steps.values_list("position", flat=True)) == [1, 2, 3]
    # One history entry, with who changed what: the service's, as for the finance UI.
    (entry,) = LogEntry.objects.filter(object_id=str(waiting_case.policy_id))
    assert "Deleted step" in entry.get_change_message()


def test_steps_are_not_changed_or_deleted_on_their_own_admin_page(admin_client, waiting_case):
    step = waiting_case.next_step
    assert admin_client.get(f"/admin/collections/step/{step.pk}/change/").status_code == 200  # to read
    response = admin_client.post(
        f"/admin/collections/step/{step.pk}/change/",
        {"policy": step.policy_id, "position": 3, "offset_days": 25, "action": "final_notice", "tone": "final"},
    )
    assert response.status_code == 403
    assert admin_client.post(f"/admin/collections/step/{step.pk}/delete/", {"post": "yes"}).status_code == 403
    step.refresh_from_db()
    assert step.offset_days == 20


def test_the_policy_admin_refuses_day_counts_beyond_ten_years_next_to_the_field(admin_client, waiting_case):
    policy = waiting_case.policy
    last = policy.steps.get(position=4)  # no case stands on it, so only its day can be wrong
    page = f"/admin/collections/policy/{policy.pk}/change/"
    form = admin_client.get(page)
    step_field = f"{step_prefix(form, last)}-offset_days"
    response = admin_client.post(page, change_form_data(form) | {"grace_days": "740000", step_field: "999999999"})
    assert response.status_code == 200
    too_many = POLICY_DAYS_TOO_MANY % {"limit_value": POLICY_DAYS_MAX}
    assert response.context["adminform"].form.errors["grace_days"] == [too_many]
    (formset,) = [inline.formset for inline in response.context["inline_admin_formsets"]]
    (step_form,) = [step_form for step_form in formset.forms if step_form.instance.pk == last.pk]
    assert step_form.errors["offset_days"] == [too_many]
    policy.refresh_from_db()
    last.refresh_from_db()
    assert (policy.grace_days, last.offset_days) == (1, 30)
