"""Where the project's translations come from and go: the customer-facing words of templates and
Python code, extracted into locale/<language>/LC_MESSAGES/django.po (committed) and compiled to .mo
(never committed: `make run` and `make test` compile them).

`manage.py makemessages` and `compilemessages` are the project's own (management/commands/): they
walk the project's tree, so they skip by themselves what is not the project's code, whatever the
command line says: the virtualenv (Django's and every package's own catalogues), run-time files and
test output. Staff pages stay English: the admin's templates are skipped (templates/admin overrides
the admin's and import-export's pages, whose words those packages translate themselves).
"""

from django.conf import settings

SKIPPED = [".venv", "var", "test-results", "node_modules", ".git", "templates/admin"]

# Every language but the source's: the .po files kept in the repository.
TRANSLATED_LANGUAGES = [code for code, _ in settings.LANGUAGES if code != "en"]


def with_skipped(ignore_patterns: list[str] | None) -> list[str]:
    patterns = list(ignore_patterns or [])
    return patterns + [pattern for pattern in SKIPPED if pattern not in patterns]
