import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from dunning_site.accounts.models import Customer
from dunning_site.collections import demo, demo_book

BOOK_EXISTS = "The database already has customers; flush it first (manage.py flush) to seed the demo book."
ALREADY_SEEDED = "The demo book already exists (the database has customers); nothing to do."
ADMIN_LOGIN = "Admin login: %(site)s/admin/  user: admin  password: admin"
TEAM_LOGINS = "Finance UI: %(site)s/  users collector, manager, viewer (password = user name)"
DEBUG_REQUIRED = (
    "seed_demo runs only with DEBUG=true: it writes 200 made-up customers and logins whose passwords everyone "
    "knows (admin/admin, and collector, manager, viewer with their user name). On a demo server that will "
    "never hold real customers, pass --allow-without-debug."
)


class Command(BaseCommand):
    help = (
        "Fill an empty database with a realistic demo book: about 200 customers, 1,000 invoices and weeks "
        "of dunning history replayed through the engine. The same seed on the same date gives the same book."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=demo_book.DEFAULT_SEED, help="Seed of the random generators.")
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing when customers exist (for `make run`'s every start)."
        )
        parser.add_argument(
            "--allow-without-debug",
            action="store_true",
            help="Seed although DEBUG is off: only for a demo server that will never hold real customers.",
        )

    def handle(self, *args, seed: int, if_empty: bool, allow_without_debug: bool, **options) -> None:
        # Its logins are public knowledge (README, the console): on a server with real customers they are
        # a way in. check --deploy --database default reports them (dunning.E009) if they exist anyway.
        if not settings.DEBUG and not allow_without_debug:
            raise CommandError(DEBUG_REQUIRED)
        if Customer.objects.exists():
            if if_empty:
                self.stdout.write(ALREADY_SEEDED)
                return
            raise CommandError(BOOK_EXISTS)
        started = time.monotonic()
        now = timezone.now()
        self.stdout.write(f"Seeding the demo book (seed {seed}, today {now.date()})…")
        book = demo_book.build_book(seed=seed, today=now.date())
        demo.book_write(book=book, now=now, progress=self.stdout.write)
        self.stdout.write(self.style.SUCCESS(f"Demo book ready in {time.monotonic() - started:.1f} s."))
        for line in demo.book_summary():
            self.stdout.write(f"  {line}")
        site = {"site": settings.SITE_URL.rstrip("/")}
        self.stdout.write(ADMIN_LOGIN % site)
        self.stdout.write(TEAM_LOGINS % site)
