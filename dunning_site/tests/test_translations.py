"""Every customer-facing word is translated: the committed .po files (locale/<language>/) hold a
translation, neither empty nor fuzzy, for each string in German, French and Spanish, with the same
placeholders; and they are current: makemessages, run on a copy of the project, finds no marked
string ({% translate %}, {% blocktranslate %}, gettext) that they lack. A new marked string fails
the suite until `make messages` adds it and someone translates it."""

import shutil
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from django.conf import settings
from django.core.management import call_command

from dunning_site.ops.translations import SKIPPED, TRANSLATED_LANGUAGES

ROOT = Path(settings.BASE_DIR)


def po_path(root: Path, language: str) -> Path:
    return root / "locale" / language / "LC_MESSAGES" / "django.po"


def catalog(path: Path, language: str):
    with path.open("rb") as file:
        return read_po(file, locale=language)


def key(message) -> tuple:
    return (message.context, message.id)


def test_the_project_translates_german_french_and_spanish():
    assert TRANSLATED_LANGUAGES == ["de", "fr", "es"]
    assert [code for code, _ in settings.LANGUAGES] == ["en", "de", "fr", "es"]
    assert settings.LOCALE_PATHS == [ROOT / "locale"]


@pytest.mark.parametrize("language", TRANSLATED_LANGUAGES)
def test_every_string_is_translated_in(language):
    found = catalog(po_path(ROOT, language), language)
    assert not found.fuzzy, "a fuzzy header is skipped by msgfmt: plurals would be read the English way"
    assert found.locale and str(found.locale) == language
    untranslated, fuzzy = [], []
    for message in found:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if not all(text.strip() for text in strings):
            untranslated.append(message.id)
        if message.fuzzy:
            fuzzy.append(message.id)
    assert untranslated == [], f"untranslated in locale/{language}: run `make messages`, then translate"
    assert fuzzy == [], f"fuzzy in locale/{language}: check each translation and drop its fuzzy flag"
    # Placeholders (%(name)s, {reason}) the same in the translation as in the English.
    problems = [(message.id, [str(error) for error in errors]) for message, errors in found.check()]
    assert problems == []


def test_the_po_files_hold_every_marked_string(tmp_path, monkeypatch, settings):
    copy = tmp_path / "project"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(*SKIPPED, "__pycache__", "*.mo"), symlinks=True)
    monkeypatch.chdir(copy)
    settings.LOCALE_PATHS = [copy / "locale"]  # written into the copy: the committed files are compared against
    call_command("makemessages", verbosity=0)
    for language in TRANSLATED_LANGUAGES:
        committed = {key(message) for message in catalog(po_path(ROOT, language), language) if message.id}
        current = {key(message) for message in catalog(po_path(copy, language), language) if message.id}
        missing = sorted(current - committed, key=str)
        assert missing == [], f"locale/{language} lacks strings marked in the code: run `make messages`, translate"


def test_makemessages_skips_what_is_not_the_projects_code():
    assert {".venv", "var", "test-results", "node_modules"} <= set(SKIPPED)
    # The admin's templates are staff pages: their words are the admin's and import-export's to translate.
    assert "templates/admin" in SKIPPED
