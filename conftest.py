"""Fixtures shared by every app's tests: a real Redis (database 15, flushed), real RQ workers."""

import django_rq
import pytest
from rq import SimpleWorker


@pytest.fixture(autouse=True)
def _anymail_test_backend(settings):
    # Django's test set-up swaps in locmem; the product sends through Anymail, so tests do too.
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"


@pytest.fixture(autouse=True)
def redis_connection():
    connection = django_rq.get_connection("default")
    connection.flushdb()
    yield connection
    connection.flushdb()


@pytest.fixture
def run_jobs(django_capture_on_commit_callbacks):
    """Run every queued job now in this process (SimpleWorker: no fork, so it sees the test's rows),
    after moving the scheduled jobs that are due (deferred deliveries, retries) onto their queues."""

    def run() -> None:
        # Jobs run inside the test's transaction, so what they enqueue "on commit" (a deferred
        # delivery, a retry) is captured and enqueued when the batch ends, as a real commit would;
        # jobs enqueued that way run in the next round.
        for _ in range(10):
            with django_capture_on_commit_callbacks(execute=True):
                worker = django_rq.get_worker("default", "messages", worker_class=SimpleWorker)
                worker.work(burst=True, with_scheduler=True)
            if not any(django_rq.get_queue(name).count for name in ("default", "messages")):
                return

    return run
