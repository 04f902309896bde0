"""Staff-written templates reach nothing but the plain context (template-injection payloads)."""

import pytest
from django.template import TemplateSyntaxError

from dunning_site.notifications.models import MessageTemplate
from dunning_site.notifications.rendering import render_message, render_text, template_errors, template_warnings

CONTEXT = {"customer_name": "Ada", "total_overdue": "€12.00", "invoices": [{"number": "INV-1"}]}


@pytest.mark.parametrize(
    ("payload", "field", "expected"),
    [
        ("{{ customer.user.password }}", "body", "“customer.user.password” is not something a message can use"),
        ("{{ settings.SECRET_KEY }}", "body", "“settings.SECRET_KEY” is not something a message can use"),
        ("{% load evil_tags %}", "body", "Invalid block tag on line 1: 'load'"),
        ("{% debug %}", "body", "Invalid block tag on line 1: 'debug'"),
        ('{% include "admin/base.html" %}', "subject", "Invalid block tag on line 1: 'include'"),
        ('{% extends "base.html" %}', "body", "Invalid block tag on line 1: 'extends'"),
        ("{% url 'admin:index' %}", "body", "Invalid block tag on line 1: 'url'"),
        ("{% csrf_token %}", "body", "Invalid block tag on line 1: 'csrf_token'"),
        ("{{ customer_name.__class__ }}", "body", "may not begin with underscores"),
        ("{% if request.user.is_superuser %}x{% endif %}", "body", "“request.user.is_superuser” is not"),
        ("{% for x in invoices %}{{ x.number|default:secret }}{% endfor %}", "body", "“secret” is not"),
        ("{% with s=settings %}{{ s }}{% endwith %}", "html_body", "“settings” is not"),
    ],
)
def test_injection_payloads_are_refused_when_saved(payload, field, expected):
    fields = {"subject": "Reminder", "body": "Hello", "html_body": ""} | {field: payload}
    errors = template_errors(**fields)
    assert any(expected in problem for problem in errors[field]), errors


def test_errors_give_the_line():
    errors = template_errors(subject="Hi", body="Hello {{ customer_name }}\n\nYou owe {{ balance }}.")
    assert errors["body"][0].startswith("Line 3: “balance”")
    broken = template_errors(subject="Hi", body="one\ntwo {% if %}\n")
    assert broken["body"][0].startswith("Line 2:")


def test_every_documented_variable_is_accepted():
    body = "{% for invoice in invoices %}{{ invoice.number }} {{ forloop.counter }}{% endfor %}" + "".join(
        "{{ " + name + " }}"
        for name in ["customer_name", "total_overdue", "pay_url", "card_update_url", "sender_address"]
    )
    assert template_errors(subject="{{ company_name }}", body=body) == {}


def test_a_template_saved_around_the_checks_still_reaches_nothing():
    # Rows written straight into the database skip validation; rendering still only sees the context.
    assert render_text("[{{ settings.SECRET_KEY }}][{{ customer.user.password }}]", CONTEXT) == "[][]"
    with pytest.raises(TemplateSyntaxError):
        render_text("{% debug %}", CONTEXT)
    with pytest.raises(TemplateSyntaxError):
        render_text("{% load static %}", CONTEXT)


def test_html_is_escaped_and_text_is_not():
    template = MessageTemplate(
        subject="{{ customer_name }}", body="Dear {{ customer_name }}", html_body="<p>Dear {{ customer_name }}</p>"
    )
    _, body, html = render_message(template, {"customer_name": "<b>Tom & Jerry</b>"})
    assert body == "Dear <b>Tom & Jerry</b>\n"
    assert html == "<p>Dear &lt;b&gt;Tom &amp; Jerry&lt;/b&gt;</p>"


def test_an_html_only_template_gets_a_text_alternative():
    template = MessageTemplate(
        subject="Overdue",
        body="",
        html_body='<p>Dear {{ customer_name }},</p><p>Please <a href="https://pay.example/1">pay here</a>.</p>',
    )
    _, body, _ = render_message(template, CONTEXT)
    assert body == "Dear Ada,\nPlease pay here (https://pay.example/1).\n"


def test_promotional_wording_is_flagged():
    (warning,) = template_warnings(subject="Pay now", body="Upgrade now and get 20% off with coupon SAVE20")
    assert "coupon" in warning and "upgrade now" in warning
    assert template_warnings(subject="Invoice overdue", body="Please pay {{ total_overdue }}.") == []
