"""Rendering of staff-written templates.

A dedicated template Engine, separate from the site's: no loaders, no request, no model instances
in the context, so a template author can only reach the plain values we hand over.
"""

from django.template import Context, Engine, TemplateSyntaxError

from dunning_site.notifications.models import MessageTemplate

ENGINE = Engine(autoescape=False, libraries={}, debug=False)

TEMPLATE_DOES_NOT_COMPILE = "The %(part)s does not compile: %(reason)s"


def render_text(source: str, context: dict) -> str:
    return ENGINE.from_string(source).render(Context(context, autoescape=False))


def render_message(template: MessageTemplate, context: dict) -> tuple[str, str]:
    """The subject (one line) and the body of `template` for this context of plain values."""
    subject = " ".join(render_text(template.subject, context).split())
    body = render_text(template.body, context).strip() + "\n"
    return subject, body


def template_errors(*, subject: str, body: str) -> dict[str, str]:
    """Compile errors by field, empty when both parts compile."""
    errors = {}
    for part, source in (("subject", subject), ("body", body)):
        try:
            ENGINE.from_string(source)
        except TemplateSyntaxError as error:
            errors[part] = TEMPLATE_DOES_NOT_COMPILE % {"part": part, "reason": error}
    return errors
