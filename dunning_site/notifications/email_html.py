"""The HTML part of a customer's email, when its template has none of its own: the plain body as it
was rendered, escaped, in paragraphs (a run of "- " lines becomes a list), its links and addresses
made clickable, inside a simple branded template (templates/emails/branded.html: the brand of
settings, the support contact, the unsubscribe link), in the customer's language. The plain body
stays the text/plain alternative, word for word.

A template written with its own HTML part (the editor's "HTML body") is sent as written: staff chose
its markup.
"""

import re

from django.template.loader import render_to_string
from django.utils import translation
from django.utils.html import format_html_join, urlize
from django.utils.safestring import SafeString, mark_safe

from dunning_site.accounts.languages import page_language
from dunning_site.lib.brand import brand

TEMPLATE = "emails/branded.html"
PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n+")
LIST_ITEM = re.compile(r"^\s*[-•*]\s+")


def _line(text: str) -> str:
    # urlize escapes what it does not turn into a link (autoescape): nothing of the body is markup.
    return urlize(text.strip(), nofollow=True, autoescape=True)


def _block(paragraph: str) -> str:
    lines = [line for line in paragraph.splitlines() if line.strip()]
    if lines and all(LIST_ITEM.match(line) for line in lines):
        items = format_html_join("\n", "<li>{}</li>", ((mark_safe(_line(LIST_ITEM.sub("", line))),) for line in lines))
        return f"<ul>\n{items}\n</ul>"
    return "<p>" + "<br>\n".join(_line(line) for line in lines) + "</p>"


def html_of_text(text: str) -> SafeString:
    """The body's paragraphs as HTML, every character of it escaped, links clickable."""
    paragraphs = [part for part in PARAGRAPH_BREAK.split(text.replace("\r\n", "\n").strip()) if part.strip()]
    return mark_safe("\n".join(_block(paragraph) for paragraph in paragraphs))


def branded_html(*, subject: str, body: str, language: str, unsubscribe_url: str) -> str:
    """The whole HTML document of an email whose template has no HTML part of its own."""
    language = page_language(language)
    with translation.override(language):
        return render_to_string(
            TEMPLATE,
            {
                "subject": subject,
                "body_html": html_of_text(body),
                "brand": brand(),
                "language": language,
                "unsubscribe_url": unsubscribe_url,
            },
        )
