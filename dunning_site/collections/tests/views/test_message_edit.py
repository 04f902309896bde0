"""A collector's draft is a template too: what is typed is refused before it is compiled when it is
beyond what a message needs (issue 9), in the live preview and when saving."""

import datetime as dt

import pytest
from django.utils.html import escape

from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.collections.tests.views.moment import NOW
from dunning_site.collections.tick import tick
from dunning_site.notifications.models import Message
from dunning_site.notifications.rendering import (
    MAX_BODY_CHARACTERS,
    SOURCE_TOO_LONG,
    TEMPLATE_DOES_NOT_COMPILE,
    TOO_MANY_OPERATORS,
)
from dunning_site.notifications.tests.test_rendering import TEMPLATE_ATTACKS

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
FIRM_SUBJECT = "[firm] Day 10: €100.00 overdue"
attacks = pytest.mark.parametrize(("attack", "refusal"), TEMPLATE_ATTACKS.values(), ids=TEMPLATE_ATTACKS.keys())


@pytest.fixture
def draft(client, collector) -> Message:
    """The firm reminder of a case five days overdue, written as a draft for the collector."""
    standard_policy()
    customer = CustomerFactory(name="Ada Lovelace", time_zone="Europe/Paris")
    InvoiceFactory(customer=customer, number="INV-1", due_on=NOW.date() - dt.timedelta(days=5), total=10_000)
    tick()
    case = customer.cases.get()
    client.post(f"/cases/{case.pk}/personalize/", {"step": case.policy.steps.get(position=2).pk})
    draft = Message.objects.get(status=Message.Status.DRAFT)
    assert draft.subject == FIRM_SUBJECT
    return draft


def draft_url(draft: Message, action: str) -> str:
    return f"/cases/{draft.cases.get().pk}/messages/{draft.pk}/{action}/"


@attacks
def test_the_draft_preview_says_why_an_attack_cannot_be_sent(client, draft, attack, refusal):
    response = client.post(draft_url(draft, "preview"), {"subject": "Hello", "body": attack}, **HTMX)
    assert response.status_code == 200
    page = response.content.decode()
    assert "This cannot be sent as it is" in page
    assert escape(f"Message: {refusal}") in page


@attacks
def test_a_draft_is_not_saved_with_an_attack(client, draft, attack, refusal):
    response = client.post(draft_url(draft, "edit"), {"subject": "Hello", "body": attack, "send": "now"})
    assert response.status_code == 400
    assert response.context["form"].errors["body"] == [refusal]
    draft.refresh_from_db()
    assert (draft.status, draft.subject) == (Message.Status.DRAFT, FIRM_SUBJECT)


def test_a_long_letter_within_the_limit_is_sent_and_one_character_more_is_refused(client, draft):
    letter = "Dear {{ customer_name }},\n" + "x" * (MAX_BODY_CHARACTERS - 26)
    assert len(letter) == MAX_BODY_CHARACTERS
    response = client.post(draft_url(draft, "edit"), {"subject": "Hello", "body": letter + "y", "send": "save"})
    assert response.context["form"].errors["body"] == [SOURCE_TOO_LONG % {"length": "20,001", "limit": "20,000"}]
    response = client.post(draft_url(draft, "edit"), {"subject": "Hello", "body": letter, "send": "save"})
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.body.startswith("Dear Ada Lovelace,\nxxx") and len(draft.body) == MAX_BODY_CHARACTERS - 26 + 19 + 1


def test_an_if_combining_too_many_operators_is_refused_with_its_line(client, draft):
    condition = " or ".join(["days_overdue"] * 22)
    body = f"Dear {{{{ customer_name }}}},\n{{% if {condition} %}}late{{% endif %}}"
    response = client.post(draft_url(draft, "preview"), {"subject": "Hello", "body": body}, **HTMX)
    refusal = TEMPLATE_DOES_NOT_COMPILE % {
        "line": 2,
        "reason": TOO_MANY_OPERATORS % {"tag": "if", "limit": 20, "count": "21"},
    }
    assert escape(f"Message: {refusal}") in response.content.decode()
