from django.core.management.commands import compilemessages

from dunning_site.ops.translations import with_skipped


class Command(compilemessages.Command):
    help = "Django's compilemessages, skipping what is not the project's code (.venv, var, test-results, node_modules)."

    def handle(self, *args, **options):
        options["ignore_patterns"] = with_skipped(options.get("ignore_patterns"))
        return super().handle(*args, **options)
