"""Rendering of staff-written templates, in a sandbox.

A dedicated template Engine, separate from the site's: no loaders (so no {% include %} or
{% extends %}), no {% load %}able libraries, no {% debug %}, only a list of harmless tags and the
built-in filters, and a context of plain values (strings, numbers, lists and dicts of them) —
never model instances — so a template author can reach nothing but what we hand over.
Templates are checked when saved: one that does not compile, uses a tag we do not offer, or
names a variable the context does not have is refused with the line and the reason.
"""

import re

from django.template import Context, Engine, Library, TemplateSyntaxError, defaultfilters, defaulttags
from django.template.base import FilterExpression, VariableNode
from django.template.defaulttags import ForNode, IfNode, WithNode
from django.utils.html import strip_tags

from dunning_site.notifications.models import MessageTemplate

# The tags a message may use; everything else (load, include, extends, debug, url, csrf_token…)
# is unknown to the engine and refused at compile time.
ALLOWED_TAGS = ["if", "for", "with", "firstof", "now", "spaceless", "comment", "cycle", "autoescape", "filter"]

register = Library()
for _name in ALLOWED_TAGS:
    register.tag(_name, defaulttags.register.tags[_name])
register.filters.update(defaultfilters.register.filters)


class SandboxEngine(Engine):
    default_builtins = ["dunning_site.notifications.rendering"]


TEXT_ENGINE = SandboxEngine(autoescape=False, debug=True)
HTML_ENGINE = SandboxEngine(autoescape=True, debug=True)

# Every variable the context builder provides (see collections.context), with an example value:
# the template editor lists these, validation accepts exactly these, and previews fall back on them.
CONTEXT_VARIABLES: dict[str, str] = {
    "customer_name": "Ada Lovelace",
    "company_name": "Analytical Engines Ltd",
    "currency": "EUR",
    "total_overdue": "€1,250.00",
    "days_overdue": "12",
    "invoice_count": "2",
    "invoices": "a list; each has number, issued_on, due_on, total, amount_due, days_overdue, pay_url",
    "pay_url": "https://billing.example.com/pay/INV-1",
    "card_update_url": "https://dunning.example.com/portal/card/…",
    "card_expires_on": "31 May 2026",
    "plan_offer_url": "https://dunning.example.com/portal/plan/…",
    "unsubscribe_url": "https://dunning.example.com/u/…",
    "collector_name": "Grace Hopper",
    "collector_signature": "Grace Hopper, Accounts Receivable",
    "sender_name": "The billing team",
    "sender_company": "Example SaaS Inc.",
    "sender_address": "1 Main Street, 75001 Paris, France",
    "sender_email": "billing@example.com",
    "sender_phone": "+33 1 23 45 67 89",
}
INVOICE_FIELDS = {"number", "issued_on", "due_on", "total", "amount_due", "days_overdue", "pay_url"}
# forloop is provided by {% for %}; its attributes are harmless counters.
LOOP_VARIABLES = {"forloop"}

TEMPLATE_DOES_NOT_COMPILE = "Line %(line)s: %(reason)s"
UNKNOWN_VARIABLE = "Line %(line)s: “%(name)s” is not something a message can use. Use one of: %(known)s."
PROMOTIONAL_WORDING = (
    "This reads like marketing (“%(words)s”). Dunning messages must stay transactional: "
    "about the money owed and how to pay, nothing to sell."
)
PROMOTIONAL_WORDS = re.compile(
    r"\b(discount|% off|special offer|limited[- ]time|upgrade now|sale|coupon|promo(?:tion|tional)?|free trial|"
    r"newsletter|deal of|exclusive offer|buy now|black friday)\b",
    re.IGNORECASE,
)


def render_text(source: str, context: dict) -> str:
    return TEXT_ENGINE.from_string(source).render(Context(context, autoescape=False))


def render_html(source: str, context: dict) -> str:
    return HTML_ENGINE.from_string(source).render(Context(context, autoescape=True))


def render_message(template: MessageTemplate, context: dict) -> tuple[str, str, str]:
    """The subject (one line), the text body and the HTML body (empty when the template has none)."""
    subject = one_line(render_text(template.subject, context))
    html = render_html(template.html_body, context).strip() if template.html_body.strip() else ""
    body = render_text(template.body, context).strip() if template.body.strip() else text_from_html(html)
    return subject, body + "\n", html


def one_line(text: str) -> str:
    """Collapse line breaks and runs of ordinary spaces, keeping the non-breaking spaces that
    locales put inside amounts (1 234,56 €)."""
    return re.sub(r"[ \t\r\n]+", " ", text).strip()


def text_from_html(html: str) -> str:
    """A readable text alternative when a template has only an HTML part."""
    text = re.sub(r"(?i)<br\s*/?>|</p>|</li>|</h\d>|</tr>", "\n", html)
    text = re.sub(r"(?i)<a\s[^>]*href=\"([^\"]+)\"[^>]*>(.*?)</a>", r"\2 (\1)", text)
    lines = [" ".join(line.split()) for line in strip_tags(text).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def template_errors(*, subject: str, body: str, html_body: str = "") -> dict[str, list[str]]:
    """Problems by field, empty when the template is safe to save."""
    errors: dict[str, list[str]] = {}
    for field, source, engine in (
        ("subject", subject, TEXT_ENGINE),
        ("body", body, TEXT_ENGINE),
        ("html_body", html_body, HTML_ENGINE),
    ):
        try:
            compiled = engine.from_string(source)
        except TemplateSyntaxError as error:
            errors[field] = [TEMPLATE_DOES_NOT_COMPILE % {"line": _error_line(error), "reason": _reason(error)}]
            continue
        unknown = _unknown_variables(compiled.nodelist, scope=set(CONTEXT_VARIABLES) | LOOP_VARIABLES)
        if unknown:
            known = ", ".join(sorted(CONTEXT_VARIABLES))
            errors[field] = [UNKNOWN_VARIABLE % {"line": line, "name": name, "known": known} for name, line in unknown]
    return errors


def template_warnings(*, subject: str, body: str, html_body: str = "") -> list[str]:
    words = sorted({match.group(0).lower() for match in PROMOTIONAL_WORDS.finditer(f"{subject}\n{body}\n{html_body}")})
    return [PROMOTIONAL_WORDING % {"words": "”, “".join(words)}] if words else []


def _error_line(error: TemplateSyntaxError) -> int | str:
    info = getattr(error, "template_debug", None)
    return info["line"] if info else "?"


def _reason(error: TemplateSyntaxError) -> str:
    reason = str(error)
    if "Invalid block tag" in reason:
        return reason.split(". Did you forget")[0] + " (messages can use: " + ", ".join(ALLOWED_TAGS) + ")."
    return reason


def _unknown_variables(nodelist, *, scope: set[str]) -> list[tuple[str, int]]:
    """Variables named anywhere in the template (branches not taken included) that the context lacks."""
    unknown: list[tuple[str, int]] = []
    for node in nodelist:
        line = node.token.lineno if getattr(node, "token", None) else "?"
        inner_scope = scope
        if isinstance(node, ForNode):
            unknown += _check_expression(node.sequence, scope, line)
            inner_scope = scope | set(node.loopvars)
            unknown += _unknown_variables(node.nodelist_loop, scope=inner_scope)
            unknown += _unknown_variables(node.nodelist_empty, scope=scope)
            continue
        if isinstance(node, WithNode):
            for expression in node.extra_context.values():
                unknown += _check_expression(expression, scope, line)
            inner_scope = scope | set(node.extra_context)
        elif isinstance(node, IfNode):
            for condition, _ in node.conditions_nodelists:
                unknown += _check_condition(condition, scope, line)
        elif isinstance(node, VariableNode):
            unknown += _check_expression(node.filter_expression, scope, line)
        else:
            for value in vars(node).values():
                if isinstance(value, FilterExpression):
                    unknown += _check_expression(value, scope, line)
                elif isinstance(value, list | tuple):
                    for item in value:
                        if isinstance(item, FilterExpression):
                            unknown += _check_expression(item, scope, line)
        for attribute in getattr(node, "child_nodelists", ()):
            children = getattr(node, attribute, None)
            if children:
                unknown += _unknown_variables(children, scope=inner_scope)
        if isinstance(node, IfNode):
            for _, children in node.conditions_nodelists:
                unknown += _unknown_variables(children, scope=scope)
    return unknown


def _check_condition(condition, scope: set[str], line) -> list[tuple[str, int]]:
    if condition is None:
        return []
    found = []
    for attribute in ("value", "first", "second"):
        part = getattr(condition, attribute, None)
        if isinstance(part, FilterExpression):
            found += _check_expression(part, scope, line)
        elif part is not None and part is not condition:
            found += _check_condition(part, scope, line)
    return found


def _check_expression(expression: FilterExpression, scope: set[str], line) -> list[tuple[str, int]]:
    variable = getattr(expression.var, "lookups", None)
    found = []
    if variable and variable[0] not in scope:
        found.append((".".join(variable), line))
    for _, arguments in expression.filters:
        for is_variable, argument in arguments:
            lookups = getattr(argument, "lookups", None)
            if is_variable and lookups and lookups[0] not in scope:
                found.append((".".join(lookups), line))
    return found
