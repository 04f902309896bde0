"""Several workers ticking at once, with real transactions on PostgreSQL."""

import datetime as dt
import threading

import pytest
from django.db import connection

from dunning_site.accounts.tests.factories import InvoiceFactory
from dunning_site.collections.case_core import case_open
from dunning_site.collections.ladder import cases_advance_batch
from dunning_site.collections.models import Case, StepExecution
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.notifications.models import Message

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
CASES = 120


@pytest.mark.django_db(transaction=True)
def test_two_workers_ticking_together_never_advance_the_same_case_twice():
    assert connection.vendor == "postgresql", "SKIP LOCKED is what this test is about"
    policy = standard_policy()
    for _ in range(CASES):
        invoice = InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=4))
        case_open(customer=invoice.customer, currency="EUR", policy=policy, invoices=[invoice], now=NOW)

    start = threading.Barrier(2)
    claimed: dict[str, int] = {}
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            start.wait()
            total = 0
            while advanced := cases_advance_batch(now=NOW, batch_size=7):
                total += advanced
            claimed[name] = total
        except BaseException as error:  # reported below, in the test's thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(name,)) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert sum(claimed.values()) == CASES, claimed
    assert StepExecution.objects.count() == CASES
    assert Message.objects.count() == CASES
    assert set(Case.objects.values_list("current_step__position", flat=True)) == {1}
