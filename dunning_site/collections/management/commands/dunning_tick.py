from django.core.management.base import BaseCommand

from dunning_site.collections.tick import tick


class Command(BaseCommand):
    help = "Run one pass of the dunning engine now: open cases, end expired pauses, perform due steps."

    def handle(self, *args, **options) -> None:
        result = tick()
        self.stdout.write(
            f"Opened {result.opened} cases, resumed {result.resumed}, advanced {result.advanced}, "
            f"failed {result.failed}."
        )
        # Each failed case is set aside for an hour with the error on its timeline; the log has the traceback.
        for failure in result.failures:
            self.stderr.write(f"Failed: {failure}")
