from django.core.management.base import BaseCommand

from dunning_site.collections.services import tick


class Command(BaseCommand):
    help = "Run one pass of the dunning engine now: open cases, end expired pauses, perform due steps."

    def handle(self, *args, **options) -> None:
        result = tick()
        self.stdout.write(f"Opened {result.opened} cases, resumed {result.resumed}, advanced {result.advanced}.")
