"""An invoice as a PDF, for invoices the billing system has no PDF of (imported from CSV, entered by
staff): who bills whom, the dates, what was billed, paid and is left, in the customer's language and
currency. Stripe's invoices link to Stripe's own PDF instead (Invoice.pdf_url)."""

import datetime as dt

from babel.dates import format_date
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _
from fpdf import FPDF, XPos, YPos

from dunning_site.accounts.models import Invoice
from dunning_site.lib.money import format_money
from dunning_site.notifications.letters import letter_font

FAMILY = "invoice"
LINE = 6


def invoice_pdf(*, invoice: Invoice, today: dt.date) -> bytes:
    """The same invoice on the same day gives the same bytes."""
    customer = invoice.customer
    language = (customer.language or "en").split("-")[0]
    locale = (customer.language or "en").replace("-", "_")
    font = letter_font()
    pdf = FPDF(format="A4", unit="mm")
    pdf.add_font(FAMILY, "", str(font.regular))
    pdf.add_font(FAMILY, "B", str(font.bold))
    pdf.set_creation_date(dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC))
    pdf.set_author(settings.DUNNING_SENDER_COMPANY)
    pdf.set_lang(customer.language or "en")
    pdf.set_margins(left=20, top=20, right=20)
    pdf.add_page()

    def line(text: str, *, bold: bool = False, size: int = 10) -> None:
        pdf.set_font(FAMILY, "B" if bold else "", size)
        pdf.multi_cell(0, LINE, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def money(minor: int) -> str:
        return format_money(minor, invoice.currency, customer.language)

    with translation.override(language):
        title = _("Invoice %(number)s") % {"number": invoice.number}
        pdf.set_title(title)
        line(settings.DUNNING_SENDER_COMPANY, bold=True, size=12)
        for address_line in settings.DUNNING_SENDER_ADDRESS.splitlines():
            line(address_line)
        pdf.ln(LINE)
        line(customer.company or customer.name, bold=True)
        for address_line in customer.postal_address.splitlines():
            line(address_line)
        pdf.ln(LINE)
        line(title, bold=True, size=16)
        line(_("Issued on %(date)s") % {"date": format_date(invoice.issued_on, format="long", locale=locale)})
        line(_("Due on %(date)s") % {"date": format_date(invoice.due_on, format="long", locale=locale)})
        pdf.ln(LINE)
        lines = [(_("Total"), invoice.total, False), (_("Paid"), invoice.amount_paid, False)]
        if invoice.amount_written_off:  # a credit note: what the customer owes less
            lines.append((_("Credited"), invoice.amount_written_off, False))
        lines.append((_("Left to pay"), invoice.amount_remaining, True))
        for label, amount, bold in lines:
            pdf.set_font(FAMILY, "B" if bold else "", 11)
            pdf.cell(60, LINE + 2, label)
            pdf.cell(0, LINE + 2, money(amount), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())
