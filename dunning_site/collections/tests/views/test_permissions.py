"""Every finance URL × anonymous / viewer / collector / manager, generated from the URL configuration:
a new URL without an entry here fails the test."""

import datetime as dt
import re

import pytest
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from django.urls import URLPattern, URLResolver, get_resolver

from dunning_site.accounts.tests.factories import InvoiceFactory, UserFactory
from dunning_site.collections.case_core import case_open
from dunning_site.collections.models import Approval, CustomerRequest, PaymentPlan
from dunning_site.collections.roles import COLLECTOR, MANAGER, VIEWER
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.notifications.models import Message

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
# name → (path, {role: expected status}); "anonymous" is sent to the login page.
FINANCE = {
    "collections:worklist": ("/", {"anonymous": 302, VIEWER: 200, COLLECTOR: 200, MANAGER: 200}),
    "collections:case_list": ("/cases/", {"anonymous": 302, VIEWER: 200, COLLECTOR: 200, MANAGER: 200}),
    "collections:case_list_export": (
        "/cases/export.csv",
        {"anonymous": 302, VIEWER: 200, COLLECTOR: 200, MANAGER: 200},
    ),
    "collections:case_list_bulk": ("/cases/bulk/", {"anonymous": 302, VIEWER: 403, COLLECTOR: 405, MANAGER: 405}),
    "collections:case_detail": ("/cases/{case}/", {"anonymous": 302, VIEWER: 200, COLLECTOR: 200, MANAGER: 200}),
    "collections:case_escalation_request": (
        "/cases/{case}/requests/escalation/",
        {"anonymous": 302, VIEWER: 403, COLLECTOR: 405, MANAGER: 405},
    ),
    "collections:case_skip_request": (
        "/cases/{case}/requests/skip/",
        {"anonymous": 302, VIEWER: 403, COLLECTOR: 405, MANAGER: 405},
    ),
    "collections:case_write_off_request": (
        "/cases/{case}/requests/write-off/",
        {"anonymous": 302, VIEWER: 403, COLLECTOR: 405, MANAGER: 405},
    ),
    # A collector's actions on the case page: POST only, except the draft editor ({message}: a draft of the case).
    "collections:case_step_now": (
        "/cases/{case}/send-now/",
        {"anonymous": 302, VIEWER: 403, COLLECTOR: 405, MANAGER: 405},
    ),
    "collections:case_step_personalize": (
        "/cases/{case}/personalize/",
        {"anonymous": 302, VIEWER: 403, COLLECTOR: 405, MANAGER: 405},
    ),
    "collections:message_preview": (
        "/cases/{case}/messages/{message}/preview/",
        {"anonymous": 302, VIEWER: 403, COLLECTOR: 405, MANAGER: 405},
    ),
    "collections:case_pause": (
        "/cases/{case}/pause/",
        {"anonymous": 302, VIEWER: 403, COLLECTOR: 405, MANAGER: 405},
    ),
    "collections:case_resume": (
        "/cases/{case}/resume/",
        {"anonymous": 302, VIEWER: 403, COLLECTOR: 405, MANAGER: 405},
    ),
    "collections:case_assign": (
        "/cases/{case}/assign/",
        {"anonymous": 302, VIEWER: 403, COLLECTOR: 405, MANAGER: 405},
    ),
    "collections:case_note_add": (
        "/cases/{case}/notes/",
        {"anonymous": 302, VIEWER: 403, COLLECTOR: 405, MANAGER: 405},
    ),
    "collections:call_outcome": (
        "/cases/{case}/calls/{message}/outcome/",
        {"anonymous": 302, VIEWER: 403, COLLECTOR: 405, MANAGER: 405},
    ),
    "collections:case_payment_record": (
        "/cases/{case}/payments/",
        {"anonymous": 302, VIEWER: 403, COLLECTOR: 405, MANAGER: 405},
    ),
    # Payment plans on the case page ({plan}: an offered plan of the case): POST only.
    "collections:case_plan_offer": (
        "/cases/{case}/plans/",
        {"anonymous": 302, VIEWER: 403, COLLECTOR: 405, MANAGER: 405},
    ),
    "collections:case_plan_cancel": (
        "/cases/{case}/plans/{plan}/cancel/",
        {"anonymous": 302, VIEWER: 403, COLLECTOR: 405, MANAGER: 405},
    ),
    "collections:message_edit": (
        "/cases/{case}/messages/{message}/edit/",
        {"anonymous": 302, VIEWER: 403, COLLECTOR: 200, MANAGER: 200},
    ),
    # What a customer sent from the portal ({request}: a dispute with a PDF): staff read it, collectors answer it.
    "collections:customer_request_attachment": (
        "/requests/{request}/attachment/",
        {"anonymous": 302, VIEWER: 200, COLLECTOR: 200, MANAGER: 200},
    ),
    "collections:customer_request_answer": (
        "/requests/{request}/answered/",
        {"anonymous": 302, VIEWER: 403, COLLECTOR: 405, MANAGER: 405},
    ),
    "collections:dashboard": ("/dashboard/", {"anonymous": 302, VIEWER: 200, COLLECTOR: 200, MANAGER: 200}),
    "collections:approval_list": ("/approvals/", {"anonymous": 302, VIEWER: 403, COLLECTOR: 403, MANAGER: 200}),
    # POST only: a manager's GET is refused as a method, everyone else's as a permission.
    "collections:approval_decide": (
        "/approvals/{approval}/decide/",
        {"anonymous": 302, VIEWER: 403, COLLECTOR: 403, MANAGER: 405},
    ),
    # Everyone reads policies and templates; only managers open the forms to add them ({policy}: the case's
    # policy, {template}: its first step's template). The preview is POST only, for those who may edit.
    "collections:policy_list": ("/policies/", {"anonymous": 302, VIEWER: 200, COLLECTOR: 200, MANAGER: 200}),
    "collections:policy_new": ("/policies/new/", {"anonymous": 302, VIEWER: 403, COLLECTOR: 403, MANAGER: 200}),
    "collections:policy_detail": (
        "/policies/{policy}/",
        {"anonymous": 302, VIEWER: 200, COLLECTOR: 200, MANAGER: 200},
    ),
    "collections:message_template_list": (
        "/message-templates/",
        {"anonymous": 302, VIEWER: 200, COLLECTOR: 200, MANAGER: 200},
    ),
    "collections:message_template_new": (
        "/message-templates/new/",
        {"anonymous": 302, VIEWER: 403, COLLECTOR: 403, MANAGER: 200},
    ),
    "collections:message_template_preview": (
        "/message-templates/preview/",
        {"anonymous": 302, VIEWER: 403, COLLECTOR: 403, MANAGER: 405},
    ),
    "collections:message_template_detail": (
        "/message-templates/{template}/",
        {"anonymous": 302, VIEWER: 200, COLLECTOR: 200, MANAGER: 200},
    ),
}
# Reached by customers or other systems, each with its own proof (signatures, signed links).
# The customer's pages are the portal app's (portal/tests/test_urls.py keeps their list).
PUBLIC = {"collections:stripe_webhook"}


def named_urls(resolver=None, namespace="") -> set[str]:
    names = set()
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            names |= named_urls(entry, inner)
        elif isinstance(entry, URLPattern) and entry.name:
            names.add(f"{namespace}{entry.name}")
    return names


@pytest.fixture(autouse=True)
def private_media(settings, tmp_path):
    settings.PRIVATE_MEDIA_ROOT = tmp_path


def test_every_collections_url_is_in_the_matrix():
    collections_urls = {name for name in named_urls() if name.startswith("collections:")}
    assert collections_urls == set(FINANCE) | PUBLIC


def filled_path(name: str) -> str:
    """The matrix's path for `name`, with a case (and its approval, draft, plan, policy, template) to name."""
    invoice = InvoiceFactory(due_on=dt.date(2026, 1, 5))
    case = case_open(customer=invoice.customer, currency="EUR", policy=standard_policy(), invoices=[invoice])
    approval = Approval.objects.create(case=case, step=case.policy.steps.last())
    draft = Message.objects.create(
        customer=case.customer, channel="email", body="Hello", status="draft", idempotency_key=f"matrix-{case.pk}"
    )
    case.messages.add(draft)
    request = CustomerRequest(customer=case.customer, case=case, kind="dispute", reason="other", text="See the file")
    request.attachment.save("proof.pdf", ContentFile(b"%PDF-1.4"), save=False)
    request.save()
    plan = PaymentPlan.objects.create(
        case=case,
        customer=case.customer,
        currency="EUR",
        total=case.amount_overdue,
        interval="monthly",
        instalment_count=2,
        first_date=dt.date(2026, 3, 16),
        source=PaymentPlan.Source.COLLECTOR,
    )
    return FINANCE[name][0].format(
        plan=plan.pk,
        request=request.pk,
        case=case.pk,
        approval=approval.pk,
        message=draft.pk,
        policy=case.policy_id,
        template=case.policy.steps.first().template_id,
    )


def sign_in(client, role: str) -> None:
    user = UserFactory(username=f"someone-{role.lower()}")
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)


@pytest.mark.parametrize("role", ["anonymous", VIEWER, COLLECTOR, MANAGER])
@pytest.mark.parametrize("name", sorted(FINANCE))
def test_each_role_gets_what_the_matrix_says(client, name, role):
    path, expected = filled_path(name), FINANCE[name][1]
    if role != "anonymous":
        sign_in(client, role)
    response = client.get(path)
    assert response.status_code == expected[role]
    if role == "anonymous":
        assert response["Location"].startswith(LOGIN)


# Pages, not downloads (an export, a customer's attachment).
PAGES = sorted(
    name
    for name, (path, expected) in FINANCE.items()
    if expected[MANAGER] == 200 and ".csv" not in path and "attachment" not in path
)


@pytest.mark.parametrize("name", PAGES)
def test_every_form_that_posts_carries_the_csrf_token(client, name):
    """Every finance page a manager opens (they see every form): each POST form has the token."""
    sign_in(client, MANAGER)
    page = client.get(filled_path(name)).content.decode()
    forms = re.findall(r"<form\b[^>]*>.*?</form>", page, flags=re.S)
    posting = [form for form in forms if re.search(r'method="post"', form[:200], flags=re.I)]
    assert posting, f"{name}: expected at least the sign-out form"
    for form in posting:
        assert 'name="csrfmiddlewaretoken"' in form, form[:200]


def test_a_signed_in_user_without_a_role_is_refused(client):
    client.force_login(UserFactory(username="no-role"))
    assert client.get("/cases/").status_code == 403
