from django.core.management.base import BaseCommand, CommandError

from dunning_site.collections.defaults import LANGUAGES, dunning_setup


class Command(BaseCommand):
    help = (
        "Create what a fresh install needs to dun: the Default policy (a ladder of reminders, a final notice "
        f"and a suspension, with contact rules) and the default message templates in {', '.join(LANGUAGES)}. "
        "Safe to run again: it only adds what is missing and never changes what staff edited."
    )

    def handle(self, *args, **options) -> None:
        try:
            result = dunning_setup()
        except ValueError as error:  # a default message file that is malformed or does not compile
            raise CommandError(str(error)) from error
        for line in result.created:
            self.stdout.write(line)
