import datetime as dt
import json

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.utils.html import escape

from dunning_site.accounts.tests.factories import InvoiceFactory
from dunning_site.collections.selectors import PREVIEW_FAILED
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.collections.tests.views.moment import NOW
from dunning_site.collections.tick import tick
from dunning_site.collections.views.message_templates import SAVED
from dunning_site.notifications.models import MessageTemplate
from dunning_site.notifications.rendering import (
    FILTER_NUMBER_TOO_LARGE,
    LOOPS_NESTED_TOO_DEEP,
    PROMOTIONAL_WORDING,
    SOURCE_TOO_LONG,
    TEMPLATE_DOES_NOT_COMPILE,
    TOO_MANY_ITERATIONS,
)
from dunning_site.notifications.tests.factories import MessageTemplateFactory
from dunning_site.notifications.tests.test_rendering import CENTERED_NAMES, TEMPLATE_ATTACKS

pytestmark = pytest.mark.django_db

FIELDS = {
    "key": "first-reminder",
    "channel": "email",
    "language": "en",
    "segment": "",
    "tone": "friendly",
    "subject": "{{ total_overdue }} overdue",
    "body": "Dear {{ customer_name }},\nplease pay.",
    "html_body": "",
}


@pytest.fixture
def customers():
    """Two customers who owe something (the preview needs open invoices)."""
    ada = InvoiceFactory(customer__name="Ada Lovelace", total=12_345).customer
    bob = InvoiceFactory(customer__name="Bob Babbage", total=9_900).customer
    return ada, bob


@pytest.fixture
def template():
    return MessageTemplateFactory(
        key="first-reminder", subject="Overdue: {{ total_overdue }}", body="Dear {{ customer_name }},\npay."
    )


def test_everyone_reads_the_templates_and_filters_them(client, viewer):
    MessageTemplateFactory(key="first-reminder", language="en", tone="friendly")
    MessageTemplateFactory(key="first-reminder", language="fr", segment="smb")
    MessageTemplateFactory(key="final-notice", language="en", tone="final")
    page = client.get("/message-templates/").content.decode()
    assert page.count("/message-templates/") >= 3 and "final-notice" in page and "Every segment" in page
    assert "New template" not in page
    page = client.get("/message-templates/", {"key": "first", "language": "fr"}).content.decode()
    assert "first-reminder" in page and "smb" in page and "final-notice" not in page
    assert page.count("<td>en</td>") == 0


def test_a_viewer_reads_a_template_and_previews_it_on_a_chosen_customer(client, viewer, template, customers):
    _, bob = customers
    page = client.get(f"/message-templates/{template.pk}/").content.decode()
    assert "Only managers can change templates." in page and 'name="body"' not in page
    assert "Preview for Ada Lovelace" in page and "Overdue: €123.45" in page
    page = client.get(f"/message-templates/{template.pk}/", {"preview_customer": bob.pk}).content.decode()
    assert "Preview for Bob Babbage" in page and "Overdue: €99.00" in page and "Dear Bob Babbage," in page


@pytest.mark.parametrize("role", ["viewer", "collector"])
def test_viewers_and_collectors_cannot_change_templates(client, request, role, template, customers):
    request.getfixturevalue(role)
    assert client.get("/message-templates/new/").status_code == 403
    assert client.post("/message-templates/new/", FIELDS | {"key": "new-one"}).status_code == 403
    assert client.post(f"/message-templates/{template.pk}/", FIELDS | {"subject": "Changed"}).status_code == 403
    assert client.post("/message-templates/preview/", FIELDS).status_code == 403
    template.refresh_from_db()
    assert template.subject == "Overdue: {{ total_overdue }}"
    assert not MessageTemplate.objects.filter(key="new-one").exists() and not LogEntry.objects.exists()


def test_a_manager_creates_a_template(client, manager, customers):
    response = client.post("/message-templates/new/", FIELDS | {"save": "1"}, follow=True)
    template = MessageTemplate.objects.get()
    assert response.redirect_chain == [(f"/message-templates/{template.pk}/", 302)]
    assert SAVED % {"template": template} in response.content.decode()
    assert (template.key, template.body) == ("first-reminder", "Dear {{ customer_name }},\nplease pay.")
    entry = LogEntry.objects.get()
    assert (entry.user, entry.action_flag, entry.object_id) == (manager, ADDITION, str(template.pk))


def test_a_manager_edits_a_template_and_the_admin_history_says_who(client, manager, template, customers):
    page = client.get(f"/message-templates/{template.pk}/").content.decode()
    assert 'hx-post="/message-templates/preview/"' in page
    assert 'hx-trigger="input changed delay:400ms, change"' in page
    response = client.post(f"/message-templates/{template.pk}/", FIELDS | {"subject": "Reminder: {{ total_overdue }}"})
    assert response.status_code == 302
    template.refresh_from_db()
    assert template.subject == "Reminder: {{ total_overdue }}"
    entry = LogEntry.objects.get()
    assert (entry.user, entry.action_flag) == (manager, CHANGE)
    assert json.loads(entry.change_message) == [{"changed": {"fields": ["Subject", "Body"]}}]


def test_a_template_that_cannot_render_is_refused_with_the_line(client, manager, template, customers):
    body = "Dear {{ customer_name }},\n{{ customer.password }}\n{% load static %}"
    response = client.post(f"/message-templates/{template.pk}/", FIELDS | {"body": body, "save": "1"})
    assert response.status_code == 400
    (error,) = response.context["form"].errors["body"]
    assert error.startswith("Line 3:") and "load" in error
    response = client.post(f"/message-templates/{template.pk}/", FIELDS | {"body": "Hi\n{{ customer.password }}"})
    (error,) = response.context["form"].errors["body"]
    assert error.startswith("Line 2: “customer.password” is not something a message can use.")
    assert error in response.content.decode().replace("&ldquo;", "“")
    template.refresh_from_db()
    assert template.body == "Dear {{ customer_name }},\npay."
    assert not LogEntry.objects.exists()


def test_promotional_wording_is_saved_with_a_warning(client, manager, template, customers):
    response = client.post(
        f"/message-templates/{template.pk}/", FIELDS | {"body": "Pay now and get a discount!"}, follow=True
    )
    assert PROMOTIONAL_WORDING % {"words": "discount"} in response.content.decode().replace("&#x27;", "'")


def test_the_live_preview_renders_the_unsaved_text_for_the_chosen_customer(client, manager, template, customers):
    _, bob = customers
    response = client.post(
        "/message-templates/preview/",
        FIELDS
        | {
            "subject": "Still {{ total_overdue }} to pay",
            "body": "Hello {{ customer_name }}",
            "html_body": "<p>Hello <b>{{ customer_name }}</b> & co</p>",
            "preview_customer": bob.pk,
        },
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert page.lstrip().startswith('<section id="preview"'), "the partial only, for htmx to swap"
    assert "Preview for Bob Babbage" in page and "Still €99.00 to pay" in page and "Hello Bob Babbage" in page
    # The HTML part goes into a sandboxed frame, escaped into its srcdoc attribute.
    assert 'sandbox srcdoc="&lt;p&gt;Hello &lt;b&gt;Bob Babbage&lt;/b&gt; &amp; co&lt;/p&gt;"' in page
    template.refresh_from_db()
    assert template.subject == "Overdue: {{ total_overdue }}"


def test_the_live_preview_shows_template_errors(client, manager, customers):
    response = client.post("/message-templates/preview/", FIELDS | {"body": "Hi\n\n{% if %}"})
    page = response.content.decode()
    assert "This template cannot be saved yet" in page and "Body: Line 3:" in page
    assert client.get("/message-templates/preview/").status_code == 405


def test_preview_without_javascript_re_renders_the_page_and_saves_nothing(client, manager, template, customers):
    _, bob = customers
    response = client.post(
        f"/message-templates/{template.pk}/",
        FIELDS | {"body": "Unsaved words for {{ customer_name }}", "preview": "1", "preview_customer": bob.pk},
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Unsaved words for Bob Babbage" in page and 'name="body"' in page
    assert f'<option value="{bob.pk}" selected>' in page
    template.refresh_from_db()
    assert template.body == "Dear {{ customer_name }},\npay."
    assert not LogEntry.objects.exists()


def test_without_a_customer_owing_the_preview_says_so(client, manager, template):
    page = client.get(f"/message-templates/{template.pk}/").content.decode()
    assert "No customer has an open invoice to preview with." in page


@pytest.mark.parametrize("count", [10, 100])
def test_the_list_takes_the_same_queries_for_10_or_100_templates(client, viewer, django_assert_max_num_queries, count):
    MessageTemplate.objects.bulk_create(
        MessageTemplate(key=f"message-{number}", body="Hi {{ customer_name }}") for number in range(count)
    )
    with django_assert_max_num_queries(7):
        response = client.get("/message-templates/")
    assert response.content.decode().count("<tr>") == count + 1


@pytest.mark.parametrize("count", [10, 100])
def test_the_editor_takes_the_same_queries_for_10_or_100_customers(
    client, manager, template, django_assert_max_num_queries, count
):
    for _ in range(count):
        InvoiceFactory()
    with django_assert_max_num_queries(10):
        response = client.get(f"/message-templates/{template.pk}/")
    assert response.content.decode().count("<option value=") == count + 4 + 3  # customers, channels and tones


# ---------------------------------------------------------------------------------------------
# Renderer exhaustion (issue 9): the attacks of the issue, through the editor's preview

HUGE_WIDTH = '{{ customer_name|rjust:"400000000" }}'
SIX_NESTED_LOOPS = "".join(f"{{% for c{level} in customer_name %}}" for level in range(6)) + "x" + "{% endfor %}" * 6


@pytest.mark.parametrize(
    ("hostile", "refusal"),
    [
        (HUGE_WIDTH, FILTER_NUMBER_TOO_LARGE % {"filter": "rjust", "limit": 100, "value": "400000000"}),
        (SIX_NESTED_LOOPS, TOO_MANY_ITERATIONS % {"limit": "20,000"}),
    ],
)
def test_a_viewer_previewing_a_hostile_template_saved_in_the_database_sees_why_it_cannot_render(
    client, viewer, customers, hostile, refusal
):
    # Saved around the form (an old row, or written by hand): every GET of the page re-renders it.
    template = MessageTemplateFactory(key="hostile", subject="Hello", body=hostile)
    response = client.get(f"/message-templates/{template.pk}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert escape(PREVIEW_FAILED % {"error": refusal}) in page
    assert len(page) < 100_000


def test_the_live_preview_of_a_hostile_template_gives_the_line_and_renders_nothing_huge(client, manager, customers):
    response = client.post("/message-templates/preview/", FIELDS | {"body": f"Dear you,\n{SIX_NESTED_LOOPS}"})
    page = response.content.decode()
    nested = LOOPS_NESTED_TOO_DEEP % {"limit": 2, "depth": 3}
    assert escape(f"Body: {TEMPLATE_DOES_NOT_COMPILE % {'line': 2, 'reason': nested}}") in page
    assert escape(PREVIEW_FAILED % {"error": TOO_MANY_ITERATIONS % {"limit": "20,000"}}) in page
    response = client.post("/message-templates/preview/", FIELDS | {"subject": HUGE_WIDTH})
    page = response.content.decode()
    assert escape("Subject: Line 1: “rjust” takes at most 100 here, not 400000000.") in page
    assert len(page) < 100_000


def test_a_hostile_template_cannot_be_saved(client, manager, template, customers):
    response = client.post(f"/message-templates/{template.pk}/", FIELDS | {"body": SIX_NESTED_LOOPS, "save": "1"})
    assert response.status_code == 400
    template.refresh_from_db()
    assert template.body == "Dear {{ customer_name }},\npay."


def test_the_editor_says_what_a_discreet_sms_leaves_empty(client, viewer, template, customers):
    page = client.get(f"/message-templates/{template.pk}/").content.decode()
    assert (
        "In a discreet SMS (set in the policy's contact rules) only <code>sender_address</code>, "
        "<code>sender_company</code>, <code>sender_email</code>, <code>sender_name</code>, "
        "<code>sender_phone</code> have a value: every other variable is empty there, links included"
    ) in page


# ---------------------------------------------------------------------------------------------
# Templates that cost nothing to refuse (issue 9): the attacks the security test made, each refused
# before it is compiled, wherever it arrives. Without that, each took seconds to compile on every
# page view, or crashed the page with a RecursionError.

attacks = pytest.mark.parametrize(("attack", "refusal"), TEMPLATE_ATTACKS.values(), ids=TEMPLATE_ATTACKS.keys())


@attacks
def test_the_editor_refuses_to_save_an_attack_next_to_the_field(client, manager, template, customers, attack, refusal):
    response = client.post(f"/message-templates/{template.pk}/", FIELDS | {"body": attack, "save": "1"})
    assert response.status_code == 400
    assert response.context["form"].errors["body"] == [refusal]
    assert escape(f"Body: {refusal}") in response.content.decode()
    template.refresh_from_db()
    assert template.body == "Dear {{ customer_name }},\npay."
    assert not LogEntry.objects.exists()


@attacks
def test_the_live_preview_of_an_attack_says_why_and_renders_nothing(client, manager, customers, attack, refusal):
    response = client.post("/message-templates/preview/", FIELDS | {"body": attack}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    page = response.content.decode()
    assert escape(f"Body: {refusal}") in page
    assert escape(PREVIEW_FAILED % {"error": refusal}) in page
    assert "preview-subject" not in page


@attacks
def test_a_viewer_opening_an_attack_saved_in_the_database_sees_why_it_cannot_render(
    client, viewer, customers, attack, refusal
):
    template = MessageTemplateFactory(key="hostile", subject="Hello", body=attack)  # around the form
    response = client.get(f"/message-templates/{template.pk}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert escape(PREVIEW_FAILED % {"error": refusal}) in page
    assert "preview-subject" not in page


@attacks
def test_the_admin_refuses_to_save_an_attack(admin_client, customers, attack, refusal):
    response = admin_client.post("/admin/notifications/messagetemplate/add/", FIELDS | {"body": attack})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["body"] == [refusal]
    assert not MessageTemplate.objects.exists()


def test_an_attack_in_the_subject_or_the_html_part_is_refused_there(client, manager, template, customers):
    response = client.post(
        f"/message-templates/{template.pk}/",
        FIELDS | {"subject": "{{ customer_name }}" * 14, "html_body": CENTERED_NAMES, "save": "1"},
    )
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert errors["subject"] == ["Ensure this value has at most 255 characters (it has 266)."]
    assert errors["html_body"] == [SOURCE_TOO_LONG % {"length": "1,800,000", "limit": "50,000"}]
    response = client.post("/message-templates/preview/", FIELDS | {"subject": "{{ customer_name }}" * 14})
    refusal = SOURCE_TOO_LONG % {"length": "266", "limit": "255"}
    assert escape(f"Subject: {refusal}") in response.content.decode()


def test_the_preview_starts_on_a_customer_being_dunned_not_the_first_by_name(client, viewer, template):
    """Alphabetically first is a customer whose only invoice is due next month: a reminder would
    tell them it is past due. The preview starts on a customer a case is dunning instead."""
    standard_policy()
    early = InvoiceFactory(customer__name="Aaron Early", due_on=NOW.date() + dt.timedelta(days=30)).customer
    late = InvoiceFactory(customer__name="Zoe Late", due_on=NOW.date() - dt.timedelta(days=12), total=4_200).customer
    InvoiceFactory(customer=late, due_on=NOW.date() + dt.timedelta(days=20), total=100_000)  # not due yet
    tick()
    assert not early.cases.exists() and late.cases.get().is_active
    template.body = "{{ customer_name }}: {{ total_overdue }}, {{ days_overdue }} days overdue."
    template.save()
    page = client.get(f"/message-templates/{template.pk}/").content.decode()
    assert "Preview for Zoe Late" in page and "Zoe Late: €42.00, 12 days overdue." in page
    # Everyone owing can still be chosen, the one shown is the one selected.
    assert f'<option value="{early.pk}">Aaron Early' in page
    assert f'<option value="{late.pk}" selected>Zoe Late' in page
    page = client.get(f"/message-templates/{template.pk}/", {"preview_customer": early.pk}).content.decode()
    assert "Preview for Aaron Early" in page and f'<option value="{early.pk}" selected>Aaron Early' in page
