"""The letter channel: a printable A4 PDF per message, stored on the message for someone to print and post.

A letter is "sent" once its PDF is ready to print; what happens at the post office is not tracked.

The layout follows DIN 5008 form B so the recipient's address shows through the window of a C5 or DL
envelope (window 20 mm from the left edge, 45 mm from the top, 90 × 45 mm), with fold marks for folding
the sheet in three.

fpdf2's built-in fonts only know Latin-1, which has no euro sign and none of the letters of Polish,
Czech, Turkish… names, so the letter embeds a Unicode TrueType font found on the machine: see
FONT_CANDIDATES for the order in which they are tried.
"""

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from babel.core import Locale, UnknownLocaleError
from babel.dates import format_date
from django.conf import settings
from django.core.files.base import ContentFile
from django.utils import timezone
from fpdf import FPDF, XPos, YPos

from dunning_site.notifications.models import Message
from dunning_site.notifications.transports import NO_ADDRESS, Transport, TransportError

FONT_MISSING = (
    "No Unicode font to print letters with: install DejaVu Sans (Debian package fonts-dejavu-core). "
    "Looked for %(paths)s."
)


@dataclass(frozen=True)
class LetterFont:
    name: str
    regular: Path
    bold: Path


# Tried in order; the first whose regular and bold files both exist wins. DejaVu Sans comes first because
# Debian's fonts-dejavu-core is in the base image of every machine of this project (developers' and CI's)
# and covers all European scripts; Liberation Sans is what a Debian machine without it most likely has.
FONT_CANDIDATES: tuple[LetterFont, ...] = (
    LetterFont(  # Debian and Ubuntu: fonts-dejavu-core
        "DejaVu Sans",
        Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
        Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
    ),
    LetterFont(  # Fedora and RHEL: dejavu-sans-fonts
        "DejaVu Sans",
        Path("/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf"),
        Path("/usr/share/fonts/dejavu-sans-fonts/DejaVuSans-Bold.ttf"),
    ),
    LetterFont(  # Debian and Ubuntu: fonts-liberation2
        "Liberation Sans",
        Path("/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf"),
        Path("/usr/share/fonts/truetype/liberation2/LiberationSans-Bold.ttf"),
    ),
    LetterFont(  # Debian and Ubuntu: fonts-liberation
        "Liberation Sans",
        Path("/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf"),
        Path("/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf"),
    ),
)


class LetterFontMissing(Exception):
    """No usable font: a deployment problem that installing the font fixes, so letters wait for it."""


def letter_font(candidates: tuple[LetterFont, ...] | None = None) -> LetterFont:
    """Looked up on every letter rather than once, so installing the font takes effect without a restart."""
    candidates = FONT_CANDIDATES if candidates is None else candidates
    for font in candidates:
        if font.regular.is_file() and font.bold.is_file():
            return font
    paths = ", ".join(str(font.regular) for font in candidates)
    raise LetterFontMissing(FONT_MISSING % {"paths": paths})


# Millimetres on an A4 sheet (210 × 297).
LEFT_MARGIN = 25  # DIN 5008: text starts 25 mm from the edge, 5 mm inside the envelope window
RIGHT_MARGIN = 20
TOP_MARGIN = 20  # for the pages after the first
BOTTOM_MARGIN = 25  # leaves room for the page numbers
SENDER_TOP = 15
WINDOW_TOP = 45  # the window's upper edge: the return address line sits right under it
ADDRESS_TOP = 50
ADDRESS_WIDTH = 80
DATE_TOP = 98
FOLD_MARKS = (105, 210)  # fold in three for a DL envelope, in two at the first mark for C5
PUNCH_MARK = 148.5
LINE_HEIGHT = 5
FAMILY = "letter"


class _LetterDocument(FPDF):
    def footer(self) -> None:
        # Pages get separated at the printer and in the customer's hands: "2 / 2" says nothing is missing.
        self.set_y(-15)
        self.set_font(FAMILY, size=8)
        self.cell(0, LINE_HEIGHT, f"{self.page_no()} / {{nb}}", align="C")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _locale(language: str) -> Locale:
    """Customers' languages are BCP 47 tags (pt-BR) and may be ones Babel lacks: English then beats no letter."""
    try:
        return Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


def letter_pdf(*, message: Message, sender_company: str, sender_address: str, today: dt.date) -> bytes:
    """Render the message as a letter; the same inputs give the same bytes, so a reprint is identical."""
    font = letter_font()
    customer = message.customer
    sender_lines = _lines(sender_address)

    pdf = _LetterDocument(format="A4", unit="mm")
    pdf.add_font(FAMILY, "", str(font.regular))
    pdf.add_font(FAMILY, "B", str(font.bold))
    pdf.set_title(message.subject)
    pdf.set_author(sender_company)
    pdf.set_lang(customer.language)
    # Metadata otherwise carries the time of rendering, which would make every render differ.
    pdf.set_creation_date(dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC))
    pdf.set_margins(left=LEFT_MARGIN, top=TOP_MARGIN, right=RIGHT_MARGIN)
    pdf.set_auto_page_break(auto=True, margin=BOTTOM_MARGIN)
    pdf.add_page()

    for y in (*FOLD_MARKS, PUNCH_MARK):
        pdf.line(4, y, 8 if y in FOLD_MARKS else 10, y)

    pdf.set_xy(LEFT_MARGIN, SENDER_TOP)
    pdf.set_font(FAMILY, "B", 11)
    pdf.cell(0, LINE_HEIGHT, sender_company, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FAMILY, "", 9)
    for line in sender_lines:
        pdf.cell(0, 4, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    # The return address shows through the window too, so undeliverable letters come back to us.
    pdf.set_xy(LEFT_MARGIN, WINDOW_TOP)
    pdf.set_font(FAMILY, "", 7)
    pdf.cell(ADDRESS_WIDTH, LINE_HEIGHT, " · ".join([sender_company, *sender_lines]))

    pdf.set_xy(LEFT_MARGIN, ADDRESS_TOP)
    pdf.set_font(FAMILY, "", 10)
    for line in _lines(customer.postal_address):
        pdf.cell(ADDRESS_WIDTH, LINE_HEIGHT - 0.5, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    pdf.set_xy(LEFT_MARGIN, DATE_TOP)
    pdf.cell(0, LINE_HEIGHT, format_date(today, format="long", locale=_locale(customer.language)), align="R")

    pdf.set_xy(LEFT_MARGIN, DATE_TOP + 2 * LINE_HEIGHT)
    pdf.set_font(FAMILY, "B", 11)
    pdf.multi_cell(0, LINE_HEIGHT + 1, message.subject, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(LINE_HEIGHT)

    pdf.set_font(FAMILY, "", 10)
    body = message.body.replace("\r\n", "\n").strip()
    pdf.multi_cell(0, LINE_HEIGHT, body, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())


class LetterTransport(Transport):
    def send(self, message: Message) -> str:
        if not message.customer.postal_address.strip():
            raise TransportError(NO_ADDRESS % {"channel": "letter"}, permanent=True)
        try:
            pdf = letter_pdf(
                message=message,
                sender_company=settings.DUNNING_SENDER_COMPANY,
                sender_address=getattr(settings, "DUNNING_SENDER_ADDRESS", ""),
                today=timezone.localdate(),
            )
        except LetterFontMissing as error:
            # Not permanent: once the font is installed the retries print the letter; dropping it would be worse.
            raise TransportError(str(error), permanent=False) from error
        message.letter.save(f"letter-{message.pk}.pdf", ContentFile(pdf), save=False)
        Message.objects.filter(pk=message.pk).update(letter=message.letter.name)
        return f"letter-{message.pk}"
