"""Rendering of staff-written templates, in a sandbox.

A dedicated template Engine, separate from the site's: no loaders (so no {% include %} or
{% extends %}), no {% load %}able libraries, no {% debug %}, only a list of harmless tags and
filters, and a context of plain values (strings, numbers, lists and dicts of them) — never model
instances — so a template author can reach nothing but what we hand over.
Templates are checked when saved: one that does not compile, uses a tag or filter we do not offer,
names a variable the context does not have, nests loops or "with" blocks too deep, or gives a
filter a width or count beyond what a message needs is refused with the line and the reason.

A template is also bounded while it renders, because rows written before these checks (or straight
into the database) never went through them, and because sizes depend on the data (a customer with
many invoices): every render has a budget of loop iterations, of characters written and of time,
checked by the sandbox's own {% for %} and by every filter. A render over budget raises
RenderRefused, which the previews show to the editor and the engine treats like any broken template
(it falls back on its built-in words). Cooperative checks, no signals or threads: a template can
only loop (in {% for %}) or grow text (in a filter, and filters take bounded arguments), so these
two places see all the work.

Compiling is work too, and nothing can interrupt it: 50,000 empty {% if %} blocks take seconds to
compile, 500 nested ones exhaust Python's recursion. So the source is read before it is compiled —
its length, its number of tags, how deep its blocks nest, how many operators one {% if %} combines —
and refused, saved or not, when it is beyond what any message needs; a template within those limits
compiles in milliseconds. The time budget starts before compiling and is checked once it is done.
"""

import contextlib
import dataclasses
import functools
import re
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from decimal import Decimal

from django.template import Context, Engine, Library, Template, TemplateSyntaxError, defaultfilters, defaulttags
from django.template.base import FilterExpression, Lexer, Node, NodeList, TokenType
from django.template.defaulttags import FilterNode, ForNode, IfNode, WithNode
from django.utils.html import strip_tags
from django.utils.safestring import mark_safe

from dunning_site.notifications.models import MessageTemplate

# The tags a message may use; everything else (load, include, extends, debug, url, csrf_token…)
# is unknown to the engine and refused at compile time. "for" is the sandbox's own (below). Not
# "autoescape": turned off, it would put customer-supplied text (names arrive from Stripe events the
# customer controls) into HTML emails as markup.
ALLOWED_TAGS = ["if", "for", "with", "firstof", "now", "spaceless", "comment", "cycle", "filter"]
# The filters a message may use: formatting of words and numbers, whose output is never much
# longer than their input. Left out: those that multiply text (join, make_list, stringformat's
# widths), those that mean nothing on our plain values (date, time, timesince…), those that mark
# customer-supplied text as safe HTML (safe, safeseq), and the rest, which no message needs.
ALLOWED_FILTERS = [
    "add",
    "capfirst",
    "center",
    "cut",
    "default",
    "default_if_none",
    "dictsort",
    "dictsortreversed",
    "divisibleby",
    "escape",
    "first",
    "floatformat",
    "force_escape",
    "last",
    "length",
    "linebreaks",
    "linebreaksbr",
    "ljust",
    "lower",
    "pluralize",
    "rjust",
    "slice",
    "striptags",
    "title",
    "truncatechars",
    "truncatewords",
    "upper",
    "urlencode",
    "wordcount",
    "wordwrap",
    "yesno",
]
# Filters whose argument is a width, a count or a number of decimal places: `rjust:"400000000"`
# would build a 400-million-character string, `floatformat:"100000"` as many digits.
NUMBER_ARGUMENT_FILTERS = {"center", "ljust", "rjust", "wordwrap", "truncatechars", "truncatewords", "floatformat"}
FILTER_NUMBER_LIMIT = 100

# How deep loops and "with" blocks may nest in a template that is saved. Messages loop over the
# invoices, at most once inside another loop; each level multiplies the work.
MAX_LOOP_NESTING = 2
MAX_WITH_NESTING = 3

# What one message (subject, text and HTML together) may cost when it renders. Far above any real
# message — a letter listing 2,000 invoices stays well inside — and far below what hurts a worker.
MAX_LOOP_ITERATIONS = 20_000
MAX_OUTPUT_CHARACTERS = 500_000
MAX_RENDER_SECONDS = 0.5

# What a template's source may hold, read before it is compiled. The longest template we ship is
# under 1,000 characters with 16 tags, its blocks 2 deep; a collector's letter rarely passes 5,000.
# An HTML part carries inline styles (mail clients ignore style sheets), so it may be longer: its
# cost lies in its tags, which are counted apart. A subject holds what its column holds.
MAX_SUBJECT_CHARACTERS = MessageTemplate._meta.get_field("subject").max_length
MAX_BODY_CHARACTERS = 20_000
MAX_HTML_CHARACTERS = 50_000
MAX_TAGS = 1_000  # {{ variables }} and {% tags %} in one part
MAX_BLOCK_NESTING = 10  # if, for, with, filter… inside one another
MAX_CONDITION_OPERATORS = 20  # and, or, not, ==… in one {% if %} or {% elif %}
# The tags that open a block closed by "end" + their name.
BLOCK_TAGS = {"if", "for", "with", "filter", "spaceless", "comment"}
CONDITION_OPERATORS = {"and", "or", "not", "in", "is", "==", "!=", "<", ">", "<=", ">="}

TEMPLATE_DOES_NOT_COMPILE = "Line %(line)s: %(reason)s"
UNKNOWN_VARIABLE = "Line %(line)s: “%(name)s” is not something a message can use. Use one of: %(known)s."
LOOPS_NESTED_TOO_DEEP = "Loops go at most %(limit)s deep (a loop inside a loop); this one is %(depth)s deep."
WITH_NESTED_TOO_DEEP = "“with” blocks go at most %(limit)s deep; this one is %(depth)s deep."
FILTER_NUMBER_TOO_LARGE = "“%(filter)s” takes at most %(limit)s here, not %(value)s."
ADD_NUMBERS_ONLY = "“add” adds numbers only; to join words, write them side by side."
TOO_MANY_ITERATIONS = "This template repeats too much: its loops went round more than %(limit)s times."
OUTPUT_TOO_LONG = "This template writes more than %(limit)s characters."
TOO_SLOW = "This template took more than %(seconds)s seconds to render."
SOURCE_TOO_LONG = "This part of the template is %(length)s characters long; it may hold at most %(limit)s."
TOO_MANY_TAGS = "This part of the template has %(count)s tags and variables; it may have at most %(limit)s."
BLOCKS_NESTED_TOO_DEEP = (
    "Blocks (if, for, with…) go at most %(limit)s deep, one inside another; this “%(tag)s” is %(depth)s deep."
)
TOO_MANY_OPERATORS = (
    "One “%(tag)s” may combine at most %(limit)s operators (and, or, not, ==…); this one has %(count)s."
)
CANNOT_COMPILE = "This template is too intricate to read (%(error)s)."


class RenderRefused(TemplateSyntaxError):
    """A template asked for more than a message may cost. A TemplateSyntaxError, so that whoever
    already copes with a broken template (the engine's fallback, the previews) copes with this."""


@dataclasses.dataclass
class RenderBudget:
    """What is left to spend in one message's render."""

    iterations_left: int = MAX_LOOP_ITERATIONS
    deadline: float = dataclasses.field(default_factory=lambda: time.monotonic() + MAX_RENDER_SECONDS)

    def spend_iteration(self) -> None:
        self.iterations_left -= 1
        if self.iterations_left < 0:
            raise RenderRefused(TOO_MANY_ITERATIONS % {"limit": f"{MAX_LOOP_ITERATIONS:,}"})
        self.check_time()

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderRefused(TOO_SLOW % {"seconds": MAX_RENDER_SECONDS})


# The budget of the render under way in this thread (or task); None outside a render.
_current_budget: ContextVar[RenderBudget | None] = ContextVar("message_render_budget", default=None)


@contextlib.contextmanager
def render_budget() -> Iterator[RenderBudget]:
    """One budget for everything rendered inside (a message's subject, text and HTML share it)."""
    budget = _current_budget.get()
    if budget is not None:
        yield budget
        return
    budget = RenderBudget()
    token = _current_budget.set(budget)
    try:
        yield budget
    finally:
        _current_budget.reset(token)


def _output_too_long() -> RenderRefused:
    return RenderRefused(OUTPUT_TOO_LONG % {"limit": f"{MAX_OUTPUT_CHARACTERS:,}"})


def _check_length(text) -> None:
    if isinstance(text, str) and len(text) > MAX_OUTPUT_CHARACTERS:
        raise _output_too_long()


class BoundedForNode(ForNode):
    """Django's {% for %}, spending the render's budget on every round and counting what it writes.
    (Django's own loop keeps no count: six nested loops over a ten-letter name go round a million
    times.) The body is Django's ForNode.render with those checks added."""

    def render(self, context) -> str:
        budget = _current_budget.get() or RenderBudget()
        parentloop = context.get("forloop", {})
        with context.push():
            values = self.sequence.resolve(context, ignore_failures=True)
            if values is None:
                values = []
            if not hasattr(values, "__len__"):
                values = list(values)
            length = len(values)
            if length < 1:
                return self.nodelist_empty.render(context)
            if self.is_reversed:
                values = reversed(values)
            parts: list[str] = []
            written = 0
            loop = context["forloop"] = {"parentloop": parentloop}
            for index, item in enumerate(values):
                budget.spend_iteration()
                loop["counter0"], loop["counter"] = index, index + 1
                loop["revcounter"], loop["revcounter0"] = length - index, length - index - 1
                loop["first"], loop["last"] = index == 0, index == length - 1
                unpack = len(self.loopvars) > 1
                if unpack:
                    try:
                        item_length = len(item)
                    except TypeError:  # not an iterable
                        item_length = 1
                    if item_length != len(self.loopvars):
                        raise ValueError(f"Need {len(self.loopvars)} values to unpack in for loop; got {item_length}. ")
                    context.update(dict(zip(self.loopvars, item, strict=True)))
                else:
                    context[self.loopvars[0]] = item
                for node in self.nodelist_loop:
                    part = node.render_annotated(context)
                    written += len(part)
                    if written > MAX_OUTPUT_CHARACTERS:
                        raise _output_too_long()
                    parts.append(part)
                if unpack:
                    context.pop()
        return mark_safe("".join(parts))


def _bounded_for(parser, token) -> BoundedForNode:
    node = defaulttags.do_for(parser, token)
    return BoundedForNode(node.loopvars, node.sequence, node.is_reversed, node.nodelist_loop, node.nodelist_empty)


def _is_integer(value) -> bool:
    if isinstance(value, bool):
        return False
    try:
        int(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def _is_number(value) -> bool:
    """A number, or text that reads as a whole number ("12"), as Django's add takes them."""
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return True
    return _is_integer(value)


def _filter_argument_problem(name: str, argument) -> str | None:
    """Why this argument would make the filter too costly, or None."""
    if name == "add" and not _is_number(argument):
        return ADD_NUMBERS_ONLY
    if name in NUMBER_ARGUMENT_FILTERS:
        # floatformat's argument may end with "g" (grouping) or "u" (unlocalized).
        text = str(argument).strip().rstrip("gu") if name == "floatformat" else argument
        if _is_integer(text) and abs(int(text)) > FILTER_NUMBER_LIMIT:
            return FILTER_NUMBER_TOO_LARGE % {"filter": name, "limit": FILTER_NUMBER_LIMIT, "value": argument}
    return None


def _bounded_filter(name: str, function: Callable) -> Callable:
    """The filter, refusing arguments that make it costly, within the render's time, and refusing to
    write more than a message may hold. functools.wraps keeps the filter's flags (is_safe,
    needs_autoescape…) and lets Django read its real signature."""

    @functools.wraps(function)
    def bounded(value, *args, **kwargs):
        budget = _current_budget.get()
        if budget is not None:
            budget.check_time()
        if args and (problem := _filter_argument_problem(name, args[0])):
            raise RenderRefused(problem)
        if name == "add" and not _is_number(value):
            raise RenderRefused(ADD_NUMBERS_ONLY)
        result = function(value, *args, **kwargs)
        _check_length(result)
        return result

    return bounded


register = Library()
for _name in ALLOWED_TAGS:
    register.tag(_name, defaulttags.register.tags[_name])
register.tag("for", _bounded_for)
for _name in ALLOWED_FILTERS:
    register.filter(_name, _bounded_filter(_name, defaultfilters.register.filters[_name]))


class SandboxEngine(Engine):
    default_builtins = ["dunning_site.notifications.rendering"]


TEXT_ENGINE = SandboxEngine(autoescape=False, debug=True)
HTML_ENGINE = SandboxEngine(autoescape=True, debug=True)


def source_problem(source: str, *, limit: int) -> str | None:
    """Why this source is refused before it is even compiled, or None. Reading is linear in the
    length, which is checked first, so refusing a hostile template costs next to nothing."""
    if len(source) > limit:
        return SOURCE_TOO_LONG % {"length": f"{len(source):,}", "limit": f"{limit:,}"}
    tokens = Lexer(source).tokenize()
    tags = [token for token in tokens if token.token_type in (TokenType.VAR, TokenType.BLOCK)]
    if len(tags) > MAX_TAGS:
        return TOO_MANY_TAGS % {"count": f"{len(tags):,}", "limit": f"{MAX_TAGS:,}"}
    open_blocks: list[str] = []
    for token in tags:
        words = token.split_contents() if token.token_type == TokenType.BLOCK else []
        name = words[0] if words else ""
        if open_blocks and open_blocks[-1] == "comment" and name != "endcomment":
            continue  # Django skips a comment's content unread
        reason = None
        if name in BLOCK_TAGS:
            open_blocks.append(name)
            if len(open_blocks) > MAX_BLOCK_NESTING:
                reason = BLOCKS_NESTED_TOO_DEEP % {"limit": MAX_BLOCK_NESTING, "tag": name, "depth": len(open_blocks)}
        elif open_blocks and name == f"end{open_blocks[-1]}":
            open_blocks.pop()
        if name in ("if", "elif"):
            operators = sum(word in CONDITION_OPERATORS for word in words[1:])
            if operators > MAX_CONDITION_OPERATORS:
                reason = TOO_MANY_OPERATORS % {"tag": name, "limit": MAX_CONDITION_OPERATORS, "count": f"{operators:,}"}
        if reason:
            return TEMPLATE_DOES_NOT_COMPILE % {"line": token.lineno, "reason": reason}
    return None


def compiled_template(source: str, *, html: bool, limit: int) -> Template:
    """The source compiled by the sandbox engine, once it has been read and found within the limits.
    Raises RenderRefused for a source beyond them or one the engine cannot compile for another reason
    than its syntax (Python's recursion limit, a tag's own bug), TemplateSyntaxError for bad syntax."""
    if problem := source_problem(source, limit=limit):
        raise RenderRefused(problem)
    try:
        return _compile(source, html)
    except TemplateSyntaxError:
        raise
    except Exception as error:  # RecursionError above all: never a server error, always a reason
        raise RenderRefused(CANNOT_COMPILE % {"error": error}) from error


@functools.lru_cache(maxsize=64)
def _compile(source: str, html: bool) -> Template:
    """Compiled once per source and process: the engine renders one template for many customers and
    a template page for every visitor. Keyed by the text itself, so an edit is never served stale.
    Compiled templates keep no state between renders (Django's cached loader shares them likewise)."""
    return (HTML_ENGINE if html else TEXT_ENGINE).from_string(source)


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
    "payment_problem": "why the last charge failed: new_card, authentication, no_funds, unknown (empty: none)",
    "action": "what the customer should do: update_card, confirm_payment or pay",
    "action_url": "the link for that action (card update, payment confirmation or payment page)",
    "confirm_payment_url": "https://invoice.stripe.com/i/… (where the bank's confirmation is given)",
    "portal_url": "https://dunning.example.com/portal/… (the customer's own page: pay, card, plan, promise, question)",
    "plan_offer_url": "https://dunning.example.com/portal/… (today the customer's page, as portal_url)",
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
    """Raises TemplateSyntaxError for a template that does not compile, RenderRefused for one over budget."""
    return _render(source, context, html=False, limit=MAX_BODY_CHARACTERS)


def render_html(source: str, context: dict) -> str:
    return _render(source, context, html=True, limit=MAX_HTML_CHARACTERS)


def _render(source: str, context: dict, *, html: bool, limit: int) -> str:
    # The budget's clock starts before compiling: compiling counts against the same half second.
    with render_budget() as budget:
        template = compiled_template(source, html=html, limit=limit)
        budget.check_time()
        output = template.render(Context(context, autoescape=html))
        budget.check_time()
    _check_length(output)
    return output


def render_message(template: MessageTemplate, context: dict) -> tuple[str, str, str]:
    """The subject (one line), the text body and the HTML body (empty when the template has none),
    rendered on one budget."""
    with render_budget():
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
    for field, source, html, limit in (
        ("subject", subject, False, MAX_SUBJECT_CHARACTERS),
        ("body", body, False, MAX_BODY_CHARACTERS),
        ("html_body", html_body, True, MAX_HTML_CHARACTERS),
    ):
        try:
            compiled = compiled_template(source, html=html, limit=limit)
        except RenderRefused as error:
            errors[field] = [str(error)]
            continue
        except TemplateSyntaxError as error:
            errors[field] = [TEMPLATE_DOES_NOT_COMPILE % {"line": _error_line(error), "reason": _reason(error)}]
            continue
        problems = []
        unknown = _unknown_variables(compiled.nodelist, scope=set(CONTEXT_VARIABLES) | LOOP_VARIABLES)
        if unknown:
            known = ", ".join(sorted(CONTEXT_VARIABLES))
            problems += [UNKNOWN_VARIABLE % {"line": line, "name": name, "known": known} for name, line in unknown]
        problems += [
            TEMPLATE_DOES_NOT_COMPILE % {"line": line, "reason": reason}
            for line, reason in _costly_constructs(compiled.nodelist)
        ]
        if problems:
            errors[field] = problems
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
    if reason.startswith("Invalid filter"):
        return reason + " (messages can use: " + ", ".join(ALLOWED_FILTERS) + ")."
    return reason


def _line(node: Node) -> int | str:
    return node.token.lineno if getattr(node, "token", None) else "?"


def _blocks(node: Node) -> list[tuple[NodeList, bool]]:
    """The node's blocks of nodes, each with whether it is the body of a loop."""
    if isinstance(node, ForNode):
        return [(node.nodelist_loop, True), (node.nodelist_empty, False)]
    if isinstance(node, IfNode):
        return [(children, False) for _, children in node.conditions_nodelists]
    return [(getattr(node, name), False) for name in node.child_nodelists if getattr(node, name, None)]


def _expressions(node: Node) -> list[FilterExpression]:
    """Every expression the node evaluates itself (not those of the nodes inside it)."""
    if isinstance(node, IfNode):
        return [found for condition, _ in node.conditions_nodelists for found in _condition_expressions(condition)]
    found = []
    for value in vars(node).values():
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, FilterExpression):
            found.append(value)
        elif isinstance(value, list | tuple):
            found += [item for item in value if isinstance(item, FilterExpression)]
    return found


def _condition_expressions(condition) -> list[FilterExpression]:
    if condition is None:
        return []
    found = []
    for attribute in ("value", "first", "second"):
        part = getattr(condition, attribute, None)
        if isinstance(part, FilterExpression):
            found.append(part)
        elif part is not None and part is not condition:
            found += _condition_expressions(part)
    return found


def _unknown_variables(nodelist, *, scope: set[str]) -> list[tuple[str, int]]:
    """Variables named anywhere in the template (branches not taken included) that the context lacks."""
    unknown: list[tuple[str, int]] = []
    for node in nodelist:
        line = _line(node)
        # {% filter %} applies its filters to its own content, which Django names "var".
        own_scope = scope | {"var"} if isinstance(node, FilterNode) else scope
        for expression in _expressions(node):
            unknown += _check_expression(expression, own_scope, line)
        inner_scope = scope
        if isinstance(node, ForNode):
            inner_scope = scope | set(node.loopvars)
        elif isinstance(node, WithNode):
            inner_scope = scope | set(node.extra_context)
        for children, is_loop_body in _blocks(node):
            nested_scope = inner_scope if is_loop_body or not isinstance(node, ForNode) else scope
            unknown += _unknown_variables(children, scope=nested_scope)
    return unknown


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


def _costly_constructs(nodelist, *, loops: int = 0, withs: int = 0) -> list[tuple[int | str, str]]:
    """(line, reason) for what could make the template costly to render: loops or "with" blocks
    nested too deep, filter arguments written into the template beyond their limits."""
    found: list[tuple[int | str, str]] = []
    for node in nodelist:
        line = _line(node)
        for expression in _expressions(node):
            found += [(line, reason) for reason in _costly_filters(expression)]
        inner_withs = withs + 1 if isinstance(node, WithNode) else withs
        if inner_withs > MAX_WITH_NESTING:
            found.append((line, WITH_NESTED_TOO_DEEP % {"limit": MAX_WITH_NESTING, "depth": inner_withs}))
            continue
        for children, is_loop_body in _blocks(node):
            inner_loops = loops + 1 if is_loop_body else loops
            if inner_loops > MAX_LOOP_NESTING:
                found.append((line, LOOPS_NESTED_TOO_DEEP % {"limit": MAX_LOOP_NESTING, "depth": inner_loops}))
                continue
            found += _costly_constructs(children, loops=inner_loops, withs=inner_withs)
    return found


def _costly_filters(expression: FilterExpression) -> list[str]:
    """Problems with the arguments written into the template itself (variables are checked when rendering)."""
    problems = []
    for function, arguments in expression.filters:
        name = getattr(function, "_filter_name", "")
        for is_variable, argument in arguments[:1]:
            literal = argument.literal if is_variable else argument
            if literal is None:
                continue
            if problem := _filter_argument_problem(name, literal):
                problems.append(problem)
    return problems
