"""Staff-written templates reach nothing but the plain context (template-injection payloads)."""

import pytest
from django.template import TemplateSyntaxError

from dunning_site.notifications import rendering
from dunning_site.notifications.models import MessageTemplate
from dunning_site.notifications.rendering import (
    ADD_NUMBERS_ONLY,
    BLOCKS_NESTED_TOO_DEEP,
    CANNOT_COMPILE,
    FILTER_NUMBER_TOO_LARGE,
    LOOPS_NESTED_TOO_DEEP,
    SOURCE_TOO_LONG,
    TEMPLATE_DOES_NOT_COMPILE,
    TOO_MANY_OPERATORS,
    TOO_MANY_TAGS,
    TOO_SLOW,
    WITH_NESTED_TOO_DEEP,
    RenderRefused,
    render_html,
    render_message,
    render_text,
    template_errors,
    template_warnings,
)

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
        # A customer's name arrives from Stripe; unescaped, it would be markup in the email.
        ("{% autoescape off %}{{ customer_name }}{% endautoescape %}", "html_body", "Invalid block tag on line 1"),
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


# ---------------------------------------------------------------------------------------------
# Renderer exhaustion: a template may not cost more than a message needs (issue 9)

NAME = {"customer_name": "Ada Lovelace", "days_overdue": 12, "invoices": [{"number": "INV-1"}]}
SIX_NESTED_LOOPS = "".join(f"{{% for c{level} in customer_name %}}" for level in range(6)) + "x" + "{% endfor %}" * 6


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            '{{ customer_name|rjust:"400000000" }}',
            FILTER_NUMBER_TOO_LARGE % {"filter": "rjust", "limit": 100, "value": "400000000"},
        ),
        (
            "{{ customer_name|ljust:400000000 }}",
            FILTER_NUMBER_TOO_LARGE % {"filter": "ljust", "limit": 100, "value": 400000000},
        ),
        (
            '{{ customer_name|center:"101" }}',
            FILTER_NUMBER_TOO_LARGE % {"filter": "center", "limit": 100, "value": "101"},
        ),
        ('{{ days_overdue|floatformat:"-100000g" }}', "“floatformat” takes at most 100 here"),
        ('{{ customer_name|wordwrap:"99999" }}', "“wordwrap” takes at most 100 here"),
        ('{{ customer_name|truncatechars:"99999" }}', "“truncatechars” takes at most 100 here"),
        ('{% filter rjust:"400000000" %}{{ customer_name }}{% endfilter %}', "“rjust” takes at most 100 here"),
        ('{{ customer_name|add:"!" }}', ADD_NUMBERS_ONLY),
    ],
)
def test_filter_arguments_that_would_build_huge_text_are_refused_with_their_line(payload, expected):
    errors = template_errors(subject="Reminder", body=f"Hello,\n\n{payload}")
    assert any(problem.startswith("Line 3: ") and expected in problem for problem in errors["body"]), errors
    with pytest.raises(RenderRefused):
        render_text(payload, NAME)


@pytest.mark.parametrize("name", ["make_list", "join", "stringformat", "safe", "random", "urlize"])
def test_filters_off_the_list_are_refused(name):
    (problem,) = template_errors(subject="Hi", body=f"{{{{ customer_name|{name}:'x' }}}}")["body"]
    assert problem.startswith(f"Line 1: Invalid filter: '{name}' (messages can use: add, capfirst")


def test_filters_on_the_list_keep_working_within_their_limits():
    body = (
        '{{ customer_name|upper|rjust:"20" }}|{{ days_overdue|add:"3" }}|{{ days_overdue|floatformat:"2" }}|'
        "{{ customer_name|truncatechars:6 }}|{% filter lower %}{{ customer_name }}{% endfilter %}|"
        "{{ invoice_count|pluralize }}"
    )
    assert template_errors(subject="{{ customer_name|default:'you' }}", body=body) == {}
    rendered = render_text(body, NAME | {"invoice_count": 2})
    assert rendered == "        ADA LOVELACE|15|12.00|Ada L…|ada lovelace|s"


def test_loops_and_with_blocks_nested_too_deep_are_refused_with_their_line():
    loops = (
        "{% for a in invoices %}\n{% for b in invoices %}\n{% for c in invoices %}x{% endfor %}{% endfor %}{% endfor %}"
    )
    assert template_errors(subject="Hi", body=loops)["body"] == [
        TEMPLATE_DOES_NOT_COMPILE % {"line": 3, "reason": LOOPS_NESTED_TOO_DEEP % {"limit": 2, "depth": 3}}
    ]
    withs = "".join(f"{{% with w{level}=customer_name %}}\n" for level in range(4)) + "x" + "{% endwith %}" * 4
    assert template_errors(subject="Hi", body=withs)["body"] == [
        TEMPLATE_DOES_NOT_COMPILE % {"line": 4, "reason": WITH_NESTED_TOO_DEEP % {"limit": 3, "depth": 4}}
    ]
    two_deep = "{% for a in invoices %}{% for b in invoices %}{{ a.number }}{{ b.number }}{% endfor %}{% endfor %}"
    assert template_errors(subject="Hi", body=two_deep) == {}
    (problem,) = template_errors(subject="Hi", body=SIX_NESTED_LOOPS)["body"]
    assert problem == TEMPLATE_DOES_NOT_COMPILE % {
        "line": 1,
        "reason": LOOPS_NESTED_TOO_DEEP % {"limit": 2, "depth": 3},
    }


def test_a_variable_inside_an_if_block_is_reported_once():
    errors = template_errors(subject="Hi", body="{% if customer_name %}{{ balance }}{% endif %}")
    assert len(errors["body"]) == 1


def test_six_nested_loops_saved_around_the_checks_stop_at_the_iteration_budget():
    with pytest.raises(RenderRefused, match="its loops went round more than 20,000 times"):
        render_text(SIX_NESTED_LOOPS, NAME)


def test_a_loop_writing_more_than_a_message_holds_stops_at_the_output_cap():
    # 2 loops of 12 rounds writing 5,000 characters each: 720,000 characters, but only 144 rounds.
    source = "{% for a in customer_name %}{% for b in customer_name %}" + "y" * 5_000 + "{% endfor %}{% endfor %}"
    with pytest.raises(RenderRefused, match="writes more than 500,000 characters"):
        render_text(source, NAME)


def test_a_width_that_comes_from_the_data_is_bounded_when_rendering():
    with pytest.raises(RenderRefused, match="“rjust” takes at most 100 here, not 400000000"):
        render_text("{{ customer_name|rjust:days_overdue }}", NAME | {"days_overdue": 400_000_000})


def test_add_joins_no_text_when_rendering():
    doubling = "{% with a=customer_name|add:customer_name %}{% with b=a|add:a %}{{ b }}{% endwith %}{% endwith %}"
    with pytest.raises(RenderRefused, match="“add” adds numbers only"):
        render_text(doubling, NAME)


def test_a_render_past_its_time_limit_stops(monkeypatch):
    monkeypatch.setattr(rendering, "MAX_RENDER_SECONDS", 0)  # already late at the first round
    with pytest.raises(RenderRefused, match="took more than 0 seconds"):
        render_text("{% for invoice in invoices %}{{ invoice.number }}{% endfor %}", NAME)


def test_a_message_shares_one_budget_between_its_subject_text_and_html():
    loop = (
        "{% for a in customer_name %}{% for b in customer_name %}{% for c in customer_name %}"
        "x{% endfor %}{% endfor %}{% endfor %}"
    )
    # 12 + 144 + 1,728 = 1,884 rounds each: twelve parts fit one budget of 20,000 alone, not together.
    assert render_text(loop * 10, NAME) == "x" * 17_280
    with pytest.raises(RenderRefused):
        render_message(MessageTemplate(subject=loop, body=loop * 5, html_body=loop * 5), NAME)


# ---------------------------------------------------------------------------------------------
# Templates that cost nothing to refuse (issue 9): read before they are compiled. The attacks of the
# security test, shared with the finance UI's tests; each took seconds to compile or exhausted
# Python's recursion (a server error) before.

EMPTY_IFS = "{% if customer_name %}{% endif %}" * 50_000
CENTERED_NAMES = "{{ customer_name|center:100 }}" * 60_000
NESTED_IFS = "{% if customer_name %}" * 500 + "{% endif %}" * 500
ONE_IF_WITH_20_000_ANDS = "{% if " + " and ".join(["customer_name"] * 20_000) + " %}x{% endif %}"
TEMPLATE_ATTACKS = {
    "50,000 empty ifs": (EMPTY_IFS, SOURCE_TOO_LONG % {"length": "1,650,000", "limit": "20,000"}),
    "60,000 centered names": (CENTERED_NAMES, SOURCE_TOO_LONG % {"length": "1,800,000", "limit": "20,000"}),
    "500 nested ifs": (
        NESTED_IFS,
        TEMPLATE_DOES_NOT_COMPILE
        % {"line": 1, "reason": BLOCKS_NESTED_TOO_DEEP % {"limit": 10, "tag": "if", "depth": 11}},
    ),
    "one if with 20,000 ands": (ONE_IF_WITH_20_000_ANDS, SOURCE_TOO_LONG % {"length": "360,016", "limit": "20,000"}),
}


@pytest.mark.parametrize(("attack", "refusal"), TEMPLATE_ATTACKS.values(), ids=TEMPLATE_ATTACKS.keys())
def test_an_attack_is_refused_unread_when_saved_and_when_rendered(attack, refusal):
    assert template_errors(subject="Reminder", body=attack) == {"body": [refusal]}
    # Saved around the checks (an old row, or by hand): rendering refuses it the same way.
    with pytest.raises(RenderRefused) as refused:
        render_message(MessageTemplate(subject="Reminder", body=attack), NAME)
    assert str(refused.value) == refusal


def test_each_limit_is_reached_and_one_more_is_refused():
    tags = "{{ customer_name }}" * 1_000
    nested = "{% if customer_name %}\n" * 10 + "x" + "{% endif %}" * 10
    condition = "{% if " + " and ".join(["customer_name"] * 21) + " %}x{% endif %}"
    # Django skips a comment's content unread, and so do the limits.
    commented = "{% comment %}" + "{% if customer_name %}" * 30 + "{% endcomment %}"
    filler = "{{ customer_name }}\n" + "x" * (20_000 - 20)
    for within in (tags, nested, condition, commented, filler):
        assert template_errors(subject="Hi", body=within) == {}, within[:60]
    assert len(render_text(tags, NAME)) == 12_000
    assert render_text(nested + commented, NAME).strip() == "x"

    assert template_errors(subject="Hi", body=tags + "{% now 'Y' %}") == {
        "body": [TOO_MANY_TAGS % {"count": "1,001", "limit": "1,000"}]
    }
    deeper = "{% with a=customer_name %}" + nested + "{% endwith %}"
    assert template_errors(subject="Hi", body=deeper) == {
        "body": [
            TEMPLATE_DOES_NOT_COMPILE
            % {"line": 10, "reason": BLOCKS_NESTED_TOO_DEEP % {"limit": 10, "tag": "if", "depth": 11}}
        ]
    }
    one_more = "{% if customer_name %}{% elif not " + " or not ".join(["days_overdue"] * 11) + " %}x{% endif %}"
    assert template_errors(subject="Hi", body=one_more) == {
        "body": [
            TEMPLATE_DOES_NOT_COMPILE
            % {"line": 1, "reason": TOO_MANY_OPERATORS % {"tag": "elif", "limit": 20, "count": "21"}}
        ]
    }
    assert template_errors(subject="Hi", body=filler + "x") == {
        "body": [SOURCE_TOO_LONG % {"length": "20,001", "limit": "20,000"}]
    }


def test_a_subject_and_an_html_part_have_their_own_lengths():
    html = "<p>{{ customer_name }}</p>" + " " * (50_000 - 26)
    assert template_errors(subject="x" * 255, body="", html_body=html) == {}
    assert template_errors(subject="x" * 256, body="", html_body=html + " ") == {
        "subject": [SOURCE_TOO_LONG % {"length": "256", "limit": "255"}],
        "html_body": [SOURCE_TOO_LONG % {"length": "50,001", "limit": "50,000"}],
    }
    assert render_html(html, NAME).strip() == "<p>Ada Lovelace</p>"


def test_whatever_stops_the_compiler_is_a_refusal_never_a_crash(monkeypatch):
    # Were the nesting limit raised too far, Python's recursion limit would stop the compiler: a
    # refusal with its reason, for the editor, the previews and the engine's fallback alike.
    monkeypatch.setattr(rendering, "MAX_BLOCK_NESTING", 10_000)
    (problem,) = template_errors(subject="Hi", body=NESTED_IFS)["body"]
    assert problem == CANNOT_COMPILE % {"error": "maximum recursion depth exceeded"}
    with pytest.raises(RenderRefused, match="too intricate to read"):
        render_text(NESTED_IFS, NAME)


def test_compiling_counts_against_the_render_time(monkeypatch):
    # No loop and no filter: before, nothing ever looked at the clock for such a template.
    monkeypatch.setattr(rendering, "MAX_RENDER_SECONDS", 0)
    with pytest.raises(RenderRefused) as refused:
        render_text("Hello {% if customer_name %}you{% endif %}", NAME)
    assert str(refused.value) == TOO_SLOW % {"seconds": 0}
