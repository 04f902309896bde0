"""Benchmark: how fast one tick opens and advances cases (make bench).

Builds a book of N customers with one overdue invoice each in a scratch PostgreSQL database
(`<DATABASE_URL name>_bench`), then times the opener and the advancing of every due case, and
prints cases per second and queries per batch; then, with half the invoices paid, times the
dashboard's figures (every chart and table) over that book. Deliveries are enqueued to REDIS_URL and removed.
"""

import datetime as dt
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dunning_site.settings")
os.environ["DATABASE_URL"] = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/dunning") + "_bench"

import django

django.setup()

import django_rq  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, connections  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

SIZES = [int(size) for size in os.environ.get("BENCH_SIZES", "1000,5000").split(",")]


def create_database() -> None:
    name = connection.settings_dict["NAME"]
    with connections["default"]._nodb_cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if not cursor.fetchone():
            cursor.execute(f'CREATE DATABASE "{name}"')
    call_command("migrate", verbosity=0)


def build_book(size: int, today: dt.date) -> None:
    from dunning_site.accounts.models import Customer, Invoice
    from dunning_site.collections.models import Policy, Step
    from dunning_site.notifications.models import MessageTemplate

    call_command("flush", "--noinput", verbosity=0)
    template = MessageTemplate.objects.create(
        key="bench", subject="{{ total_overdue }} overdue", body="{% for i in invoices %}{{ i.number }}{% endfor %}"
    )
    policy = Policy.objects.create(name="Bench", grace_days=1)
    for position, offset in enumerate([3, 10, 20], start=1):
        Step.objects.create(policy=policy, position=position, offset_days=offset, action="reminder", template=template)
    zones = ["Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Sydney"]
    customers = Customer.objects.bulk_create(
        Customer(name=f"Customer {n}", email=f"c{n}@bench.example", time_zone=zones[n % 4]) for n in range(size)
    )
    Invoice.objects.bulk_create(
        Invoice(
            customer=customer,
            number=f"B-{n}",
            currency="EUR",
            total=10_000 + n,
            issued_on=today - dt.timedelta(days=30),
            due_on=today - dt.timedelta(days=5),
        )
        for n, customer in enumerate(customers)
    )


def main() -> None:
    from dunning_site.collections.ladder import cases_advance_batch, cases_open_overdue

    create_database()
    queue = django_rq.get_queue("messages")
    print(
        f"{'cases':>7} {'open (s)':>9} {'open/s':>8} {'advance (s)':>12} {'advanced/s':>11} {'queries/batch':>14}"
        f" {'dashboard (s)':>14} {'queries':>8}"
    )
    for size in SIZES:
        now = dt.datetime.now(dt.UTC)
        build_book(size, now.date())
        started = time.perf_counter()
        opened = cases_open_overdue(now=now)
        open_seconds = time.perf_counter() - started
        later = now + dt.timedelta(days=1)
        advanced, batches = 0, 0
        connection.queries_log.clear()
        started = time.perf_counter()
        with CaptureQueriesContext(connection) as queries:
            while claimed := cases_advance_batch(now=later, batch_size=100):
                advanced += claimed
                batches += 1
        advance_seconds = time.perf_counter() - started
        queue.empty()
        assert opened == size and advanced == size, (opened, advanced)
        dashboard_seconds, dashboard_queries = time_dashboard(later)
        print(
            f"{size:>7} {open_seconds:>9.2f} {size / open_seconds:>8.0f} {advance_seconds:>12.2f}"
            f" {size / advance_seconds:>11.0f} {len(queries) / batches:>14.1f}"
            f" {dashboard_seconds:>14.2f} {dashboard_queries:>8}"
        )


def time_dashboard(now: dt.datetime) -> tuple[float, int]:
    from dunning_site.accounts.models import Invoice, Payment
    from dunning_site.collections.dashboard import dashboard, period_ending_today

    Payment.objects.bulk_create(
        Payment(invoice=invoice, amount=invoice.total, status="succeeded", at=now)
        for invoice in Invoice.objects.all()[::2]
    )
    # A book loaded in bulk has no planner statistics yet; autovacuum gathers them in production, and
    # without them PostgreSQL plans the correlated sums as scans (20 s instead of 0.5 s at 5,000 cases).
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        dashboard(period=period_ending_today(months=6))
    return time.perf_counter() - started, len(queries)


if __name__ == "__main__":
    main()
