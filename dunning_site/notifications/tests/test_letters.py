"""The letter channel, read back the way a PDF viewer reads it.

fpdf2 compresses page streams and writes text as glyph codes of a font subset, so searching the raw
bytes for "Musterstraße" would find nothing even in a correct letter. `pdf_pages_text` decodes the text
through each font's ToUnicode map, which is what viewers and pdftotext do; no PDF reader is a
dependency of the project, so the decoding lives here. When poppler's pdftotext is on the machine, a
second test checks the letter with it too.
"""

import datetime as dt
import re
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest
import time_machine

from dunning_site.accounts.tests.factories import CustomerFactory
from dunning_site.notifications import letters
from dunning_site.notifications.letters import FONT_CANDIDATES, LetterFont, LetterTransport, letter_font, letter_pdf
from dunning_site.notifications.models import Message
from dunning_site.notifications.services import message_deliver
from dunning_site.notifications.transports import NO_ADDRESS, TransportError

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)
ADDRESS_LINES = ["Groß & Söhne GmbH", "z. Hd. Jürgen Groß", "Musterstraße 12", "10115 Berlin", "Deutschland"]
SUBJECT = "Zahlungserinnerung: Rechnung RE-2026-001"
BODY = (
    "Sehr geehrter Herr Groß,\n\n"
    "unsere Rechnung RE-2026-001 über 1.234,56 € ist seit dem 22. Dezember 2025 fällig.\n\n"
    "Mit freundlichen Grüßen\n"
    "Ihr Forderungsmanagement\n"
)


# --- Reading the PDF back -------------------------------------------------------------------------

OBJECT_START = re.compile(rb"(\d+) 0 obj")
TEXT_OPERATION = re.compile(rb"/(F\d+)\s+[\d.]+\s+Tf|\(((?:\\.|[^\\)])*)\)\s*Tj|\b(ET)\b", re.S)
LITERAL_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


def pdf_objects(pdf: bytes) -> dict[int, tuple[bytes, bytes]]:
    """Each object's dictionary and inflated stream; walked in order so stream bytes are never parsed."""
    objects: dict[int, tuple[bytes, bytes]] = {}
    position = 0
    while match := OBJECT_START.search(pdf, position):
        end_of_dictionary = min(
            i for i in (pdf.find(b"stream", match.end()), pdf.find(b"endobj", match.end())) if i > 0
        )
        dictionary = pdf[match.end() : end_of_dictionary]
        data = b""
        if pdf.startswith(b"stream", end_of_dictionary):
            start = end_of_dictionary + len(b"stream")
            start += 2 if pdf.startswith(b"\r\n", start) else 1
            length = int(re.search(rb"/Length (\d+)", dictionary).group(1))
            data = pdf[start : start + length]
            if b"/FlateDecode" in dictionary:
                data = zlib.decompress(data)
        objects[int(match.group(1))] = (dictionary, data)
        position = pdf.find(b"endobj", end_of_dictionary) + len(b"endobj")
    return objects


def unescape_literal(literal: bytes) -> bytes:
    return re.sub(
        rb"\\([0-7]{1,3}|.)",
        lambda match: (
            bytes([int(match.group(1), 8)])
            if match.group(1)[:1].isdigit()
            else LITERAL_ESCAPES.get(match.group(1), match.group(1))
        ),
        literal,
        flags=re.S,
    )


def to_unicode_maps(objects: dict[int, tuple[bytes, bytes]]) -> dict[bytes, dict[int, str]]:
    """Font resource name (F1) → glyph code → the characters it stands for."""
    maps: dict[bytes, dict[int, str]] = {}
    for dictionary, _ in objects.values():
        for resource_name, font_number in re.findall(rb"/(F\d+) (\d+) 0 R", dictionary):
            to_unicode = re.search(rb"/ToUnicode (\d+) 0 R", objects[int(font_number)][0])
            cmap = objects[int(to_unicode.group(1))][1]
            pairs = b"".join(re.findall(rb"beginbfchar(.*?)endbfchar", cmap, re.S))
            maps[resource_name] = {
                int(code, 16): bytes.fromhex(text.decode()).decode("utf-16-be")
                for code, text in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", pairs)
            }
    return maps


def pdf_pages_text(pdf: bytes) -> list[str]:
    """One string per page, one line per text object (BT … ET): fpdf2 writes a line of text in one."""
    objects = pdf_objects(pdf)
    maps = to_unicode_maps(objects)
    pages_dictionary = next(dictionary for dictionary, _ in objects.values() if b"/Type /Pages" in dictionary)
    pages = []
    for page_number in re.findall(rb"(\d+) 0 R", re.search(rb"/Kids \[(.*?)\]", pages_dictionary, re.S).group(1)):
        contents = re.search(rb"/Contents (\d+) 0 R", objects[int(page_number)][0]).group(1)
        lines, line, font = [], "", b""
        for operation in TEXT_OPERATION.finditer(objects[int(contents)][1]):
            font_name, literal, end_of_text = operation.groups()
            if font_name:
                font = font_name
            elif literal is not None:
                codes = unescape_literal(literal)
                line += "".join(maps[font][int.from_bytes(codes[i : i + 2])] for i in range(0, len(codes), 2))
            elif end_of_text and line:
                lines.append(line)
                line = ""
        pages.append("\n".join(lines))
    return pages


def pdf_info(pdf: bytes, key: str) -> str:
    value = re.search(rb"/" + key.encode() + rb" (<[0-9A-Fa-f]*>|\((?:\\.|[^\\)])*\))", pdf, re.S).group(1)
    raw = bytes.fromhex(value[1:-1].decode()) if value.startswith(b"<") else unescape_literal(value[1:-1])
    return raw[2:].decode("utf-16-be") if raw.startswith(b"\xfe\xff") else raw.decode("latin-1")


# --- Fixtures -------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = tmp_path
    settings.DUNNING_SENDER_COMPANY = "Beispiel SaaS GmbH"
    settings.DUNNING_SENDER_ADDRESS = "Hauptstraße 1\n80331 München"
    return tmp_path


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def letter_message(*, postal_address: str = "\n".join(ADDRESS_LINES), body: str = BODY, language: str = "de"):
    customer = CustomerFactory(language=language, postal_address=postal_address)
    return Message.objects.create(
        customer=customer,
        channel="letter",
        to_address=postal_address,
        subject=SUBJECT,
        body=body,
        idempotency_key=f"letter-test:{customer.pk}",
    )


# --- Tests ----------------------------------------------------------------------------------------


def test_the_letter_is_stored_as_a_pdf_with_address_subject_amount_and_local_date(clock, media_root):
    message = letter_message()

    provider_id = LetterTransport().send(message)

    assert provider_id == f"letter-{message.pk}"
    message.refresh_from_db()
    assert message.letter.name == f"letters/2026/01/letter-{message.pk}.pdf"
    pdf = (media_root / message.letter.name).read_bytes()
    assert pdf.startswith(b"%PDF-")
    (page,) = pdf_pages_text(pdf)
    lines = page.splitlines()
    assert lines[lines.index(ADDRESS_LINES[0]) :][: len(ADDRESS_LINES)] == ADDRESS_LINES
    assert "5. Januar 2026" in lines
    assert SUBJECT in lines
    assert "unsere Rechnung RE-2026-001 über 1.234,56 € ist seit dem 22. Dezember 2025 fällig." in lines
    assert "Beispiel SaaS GmbH" in lines
    assert "Hauptstraße 1" in lines
    assert "1 / 1" in lines


def test_the_letter_carries_its_subject_and_sender_as_document_metadata(clock):
    message = letter_message()
    pdf = letter_pdf(message=message, sender_company="Beispiel SaaS GmbH", sender_address="", today=NOW.date())

    assert pdf_info(pdf, "Title") == SUBJECT
    assert pdf_info(pdf, "Author") == "Beispiel SaaS GmbH"
    assert pdf_info(pdf, "CreationDate") == "D:20260105000000Z"


def test_the_same_letter_renders_to_the_same_bytes(clock):
    message = letter_message()

    def render() -> bytes:
        return letter_pdf(message=message, sender_company="Beispiel SaaS GmbH", sender_address="", today=NOW.date())

    assert render() == render()


@pytest.mark.parametrize(
    ("language", "date"),
    [
        ("de", "5. Januar 2026"),
        ("fr", "5 janvier 2026"),
        ("pt-BR", "5 de janeiro de 2026"),
        ("en", "January 5, 2026"),
        ("xx-unknown", "January 5, 2026"),
    ],
)
def test_the_date_is_written_in_the_customers_language(clock, language: str, date: str):
    message = letter_message(language=language)
    pdf = letter_pdf(message=message, sender_company="Beispiel SaaS GmbH", sender_address="", today=NOW.date())

    assert date in pdf_pages_text(pdf)[0].splitlines()


@pytest.mark.parametrize("postal_address", ["", " \n  \n"])
def test_a_customer_without_a_postal_address_is_refused_permanently(clock, media_root, postal_address: str):
    message = letter_message(postal_address=postal_address)

    with pytest.raises(TransportError) as raised:
        LetterTransport().send(message)

    assert raised.value.permanent
    assert str(raised.value) == NO_ADDRESS % {"channel": "letter"}
    assert not list(media_root.rglob("*.pdf"))
    message.refresh_from_db()
    assert not message.letter


def test_a_long_letter_runs_to_two_pages_numbered_in_the_footer(clock, media_root):
    paragraphs = [f"Rechnung RE-2025-{number:03d} über 99,00 € ist offen." for number in range(60)]
    message = letter_message(body="\n".join(paragraphs))

    LetterTransport().send(message)

    message.refresh_from_db()
    first, second = pdf_pages_text((media_root / message.letter.name).read_bytes())
    assert first.splitlines()[-1] == "1 / 2"
    assert second.splitlines()[-1] == "2 / 2"
    assert paragraphs[0] in first
    assert paragraphs[-1] in second


def test_delivery_marks_the_letter_sent_once_it_is_ready_to_print(clock, media_root):
    message = letter_message()

    assert message_deliver(message_id=message.pk) == "sent"

    message.refresh_from_db()
    assert message.status == Message.Status.SENT
    assert message.provider_message_id == f"letter-{message.pk}"
    assert (media_root / message.letter.name).read_bytes().startswith(b"%PDF-")


def test_without_a_font_the_letter_waits_and_the_error_names_the_font_to_install(clock, media_root, monkeypatch):
    missing = LetterFont("DejaVu Sans", media_root / "DejaVuSans.ttf", media_root / "DejaVuSans-Bold.ttf")
    monkeypatch.setattr(letters, "FONT_CANDIDATES", (missing,))
    message = letter_message()

    with pytest.raises(TransportError) as raised:
        LetterTransport().send(message)

    assert not raised.value.permanent
    assert "DejaVu Sans" in str(raised.value)
    assert "fonts-dejavu-core" in str(raised.value)
    assert str(media_root / "DejaVuSans.ttf") in str(raised.value)


def test_the_first_font_whose_files_exist_is_used(tmp_path: Path):
    (tmp_path / "Regular.ttf").touch()
    (tmp_path / "Bold.ttf").touch()
    missing = LetterFont("Missing", tmp_path / "Missing.ttf", tmp_path / "Missing-Bold.ttf")
    half_installed = LetterFont("Half", tmp_path / "Regular.ttf", tmp_path / "Missing-Bold.ttf")
    present = LetterFont("Present", tmp_path / "Regular.ttf", tmp_path / "Bold.ttf")

    assert letter_font((missing, half_installed, present)) == present


def test_this_machine_has_the_font_letters_are_printed_with():
    # The project ships no font: this fails loudly on a machine image that dropped fonts-dejavu-core.
    assert letter_font() == FONT_CANDIDATES[0]


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (Debian package poppler-utils) is absent")
def test_poppler_reads_the_same_letter(clock, media_root):
    message = letter_message()
    LetterTransport().send(message)
    message.refresh_from_db()

    text = subprocess.run(
        ["pdftotext", "-enc", "UTF-8", str(media_root / message.letter.name), "-"],
        capture_output=True,
        check=True,
        text=True,
    ).stdout

    lines = text.splitlines()
    assert lines[lines.index(ADDRESS_LINES[0]) :][: len(ADDRESS_LINES)] == ADDRESS_LINES
    for expected in (SUBJECT, "5. Januar 2026"):
        assert expected in lines
    assert "1.234,56 €" in text
