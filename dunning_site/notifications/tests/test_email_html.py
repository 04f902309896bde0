"""Every customer email carries an HTML part beside its text: the template's own, or the rendered
text itself, escaped, in paragraphs, links clickable, inside the brand's frame (settings BRAND_*), in
the customer's language. Sent through the workers to Anymail's test backend (mail.outbox).

The clock stands on Monday 2 March 2026, 12:00 UTC (13:00 in Paris, inside contact hours).
"""

import datetime as dt

import pytest
import time_machine
from django.core import mail

from dunning_site.accounts.models import Channel
from dunning_site.accounts.tests.factories import CustomerFactory
from dunning_site.notifications.email_html import html_of_text
from dunning_site.notifications.models import Message
from dunning_site.notifications.services import messages_create

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
BODY = (
    "Hello Tom & Jerry <script>alert(1)</script>,\n"
    "invoice INV-1 is overdue.\n\n"
    "- INV-1: €120.00\n"
    "- INV-2: €80.00\n\n"
    "Pay here: https://pay.example.com/i/abc?x=1&y=2\n\n"
    "Kind regards,\nThe billing team\n"
)


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def brand(settings):
    settings.BRAND_NAME = "Acme & Co"
    settings.BRAND_LOGO_URL = "https://cdn.example.com/logo.png"
    settings.BRAND_PRIMARY_COLOUR = "#123456"
    settings.BRAND_TEXT_ON_PRIMARY_COLOUR = "#ffffff"
    settings.BRAND_SUPPORT_EMAIL = "help@acme.example"
    settings.BRAND_SUPPORT_PHONE = "+33 1 23 45 67 89"
    settings.SITE_URL = "https://dunning.example.com"


@pytest.fixture
def send(clock, django_capture_on_commit_callbacks, deliver_all):
    def run(*, customer, body: str = BODY, html_body: str = "") -> Message:
        message = Message(
            customer=customer,
            channel=Channel.EMAIL,
            to_address=customer.email,
            subject="Invoice INV-1 is overdue",
            body=body,
            html_body=html_body,
            idempotency_key=f"test:email:{customer.pk}",
        )
        with django_capture_on_commit_callbacks(execute=True):
            messages_create([message])
        deliver_all(clock)
        message.refresh_from_db()
        assert message.status == Message.Status.SENT
        return message

    return run


def parts(sent) -> tuple[str, str]:
    (html, mimetype), *others = sent.alternatives
    assert mimetype == "text/html" and not others
    return sent.body, html


def test_an_email_without_an_html_template_gets_the_branded_html_part_beside_its_text(send, brand):
    send(customer=CustomerFactory(email="tom@example.com", language="en"))
    (sent,) = mail.outbox
    text, html = parts(sent)
    assert text == BODY, "the text part is the rendered body, word for word"
    # Nothing of the body is markup: escaped, then links made clickable.
    assert "<script>" not in html
    assert "Tom &amp; Jerry &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<a href="https://pay.example.com/i/abc?x=1&amp;y=2" rel="nofollow">' in html
    # Paragraphs, line breaks and the list of invoices.
    assert "<p>Hello Tom &amp; Jerry" in html and "<br>\ninvoice INV-1 is overdue.</p>" in html
    assert "<ul>\n<li>INV-1: €120.00</li>\n<li>INV-2: €80.00</li>\n</ul>" in html
    # The brand and the support contact from settings, the unsubscribe link of the List-Unsubscribe header.
    assert '<html lang="en">' in html
    assert 'alt="Acme &amp; Co"' in html and 'src="https://cdn.example.com/logo.png"' in html
    assert "background:#123456;color:#ffffff" in html
    assert '<a href="mailto:help@acme.example">help@acme.example</a> or call +33 1 23 45 67 89' in html
    assert "Acme &amp; Co sends you this email about your account." in html
    unsubscribe = sent.extra_headers["List-Unsubscribe"].strip("<>")
    assert f'<a href="{unsubscribe}"' in html and "Stop payment reminders by email" in html


def test_a_german_customer_gets_the_frame_in_german(send, brand):
    send(customer=CustomerFactory(email="jm@example.de", language="de-AT"), body="Guten Tag,\nbitte zahlen Sie.\n")
    _text, html = parts(mail.outbox[0])
    assert '<html lang="de">' in html
    assert "Fragen? Schreiben Sie an" in html and "wir helfen Ihnen gern" in html
    assert "Keine Zahlungserinnerungen mehr per E-Mail erhalten" in html
    assert "Stop payment reminders" not in html


def test_a_customer_in_a_language_the_pages_do_not_speak_gets_the_frame_in_english(send, brand):
    send(customer=CustomerFactory(email="ana@example.br", language="pt-BR"), body="Olá\n")
    _text, html = parts(mail.outbox[0])
    assert '<html lang="en">' in html and "Stop payment reminders by email" in html


def test_without_a_logo_the_brand_name_heads_the_email(send, brand, settings):
    settings.BRAND_LOGO_URL = ""
    send(customer=CustomerFactory(email="tom@example.com"))
    _text, html = parts(mail.outbox[0])
    assert "<img" not in html and "Acme &amp; Co\n</td>" in html


def test_a_template_with_its_own_html_part_is_sent_as_written(send, brand):
    own = "<p>Hello <strong>Tom</strong></p>"
    send(customer=CustomerFactory(email="tom@example.com"), body="Hello Tom\n", html_body=own)
    text, html = parts(mail.outbox[0])
    assert (text, html) == ("Hello Tom\n", own)


@pytest.mark.parametrize(
    ("text", "html"),
    [
        ("One line", "<p>One line</p>"),
        ("a\r\nb\r\n\r\n\r\nc", "<p>a<br>\nb</p>\n<p>c</p>"),
        ("Write to help@acme.example.", '<p>Write to <a href="mailto:help@acme.example">help@acme.example</a>.</p>'),
        ("- <b>\n- x & y", "<ul>\n<li>&lt;b&gt;</li>\n<li>x &amp; y</li>\n</ul>"),
        ("- a list item\nand a line that is not", "<p>- a list item<br>\nand a line that is not</p>"),
        ("", ""),
    ],
)
def test_the_text_becomes_escaped_paragraphs(text, html):
    assert html_of_text(text) == html
