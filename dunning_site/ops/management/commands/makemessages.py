from django.core.management.commands import makemessages

from dunning_site.ops.translations import TRANSLATED_LANGUAGES, with_skipped


class Command(makemessages.Command):
    help = (
        "Django's makemessages, skipping what is not the project's code (.venv, var, test-results, "
        "node_modules, the admin's templates); without --locale or --all, the project's languages "
        f"({', '.join(TRANSLATED_LANGUAGES)})."
    )

    def handle(self, *args, **options):
        options["ignore_patterns"] = with_skipped(options.get("ignore_patterns"))
        if not options.get("locale") and not options.get("all") and not options.get("exclude"):
            options["locale"] = list(TRANSLATED_LANGUAGES)
        # No line numbers: a string moving inside a template must not rewrite every .po file.
        options["add_location"] = options.get("add_location") or "file"
        # A string taken out of the code leaves the .po files with it (git keeps its translation).
        options["no_obsolete"] = True
        return super().handle(*args, **options)
