"""Delivery when the machinery around it fails: RQ running a job before its message is due, the
database connection dropped right after the provider accepted, Redis restarted empty, a worker
killed in the middle of a send. Real processes: PostgreSQL, a redis-server started for the test,
`manage.py rqworker` subprocesses and an SMTP server (tests/smtp_fake.py).
"""

import datetime as dt
import os
import signal
import socket
import subprocess
import time

import django_rq
import psycopg
import pytest
import redis
import time_machine
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection

from conftest import manage_command
from dunning_site.accounts.tests.factories import CustomerFactory
from dunning_site.notifications import jobs
from dunning_site.notifications.jobs import deliver
from dunning_site.notifications.models import ContactRules, Message
from dunning_site.notifications.services import (
    DELIVERY_BACKOFF,
    STUCK_AFTER,
    STUCK_SENDING,
    UNEXPECTED_FAILURE,
    message_deliver,
    messages_create,
    messages_sweep,
)
from dunning_site.notifications.tests.smtp_fake import HANG, FaultySmtpServer

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 2, 12, 0, 0, 400_000, tzinfo=dt.UTC)  # a Monday, 13:00 in Paris
DEADLINE = 30  # seconds a real process gets to do what a test waits for


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def reminder(customer=None, **fields) -> Message:
    customer = customer or CustomerFactory()
    values = {
        "customer": customer,
        "channel": "email",
        "to_address": customer.email,
        "subject": "Your invoice INV-1 is overdue",
        "body": "Please pay €120.00.\n",
        "idempotency_key": f"test:{customer.pk}",
    }
    return Message(**(values | fields))


class ProviderDown:
    """An email backend whose provider answers 503, as a down ESP does."""

    def __init__(self, *args, **kwargs) -> None:
        self.fail_silently = False

    def send_messages(self, messages):
        from anymail.exceptions import AnymailAPIError

        raise AnymailAPIError("ESP returned 503 Service Unavailable")


# ---------------------------------------------------------------------------------------------
# RQ schedules by whole seconds


def scheduled_deliveries() -> list[tuple[str, dt.datetime]]:
    registry = django_rq.get_queue("messages").scheduled_job_registry
    return [(job_id, registry.get_scheduled_time(job_id)) for job_id in registry.get_job_ids()]


def test_a_retry_whose_second_comes_before_its_message_is_due_still_delivers_it(
    clock, settings, django_capture_on_commit_callbacks, run_jobs
):
    with django_capture_on_commit_callbacks(execute=True):
        (message,) = messages_create([reminder()])
    settings.EMAIL_BACKEND = f"{__name__}.ProviderDown"
    run_jobs()
    message.refresh_from_db()
    retry_at = NOW + dt.timedelta(seconds=DELIVERY_BACKOFF[0])
    assert (message.status, message.send_after) == (Message.Status.QUEUED, retry_at)  # 12:00:30.4

    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    # 12:00:30.0: RQ runs what it scheduled "for 12:00:30.4" now, as it drops the fraction.
    clock.move_to(retry_at.replace(microsecond=0))
    run_jobs()
    clock.move_to(retry_at.replace(microsecond=0) + dt.timedelta(seconds=1))
    run_jobs()
    message.refresh_from_db()
    assert message.status == Message.Status.SENT, "delivered by its own retry, without waiting for the sweeper"
    assert len(mail.outbox) == 1
    assert scheduled_deliveries() == []


def test_a_delivery_job_that_finds_its_message_not_yet_due_makes_sure_one_runs_when_it_is(
    clock, django_capture_on_commit_callbacks, run_jobs
):
    (message,) = messages_create([reminder(send_after=NOW + dt.timedelta(seconds=30))])  # 12:00:30.4
    assert scheduled_deliveries() == [], "its own job is lost (the transaction's commit is not run here)"

    with django_capture_on_commit_callbacks(execute=True):
        assert deliver(message.pk) == "not due"
    with django_capture_on_commit_callbacks(execute=True):
        assert deliver(message.pk) == "not due"  # twice, as a stray job and a sweeper's may
    due = dt.datetime(2026, 3, 2, 12, 0, 31, tzinfo=dt.UTC)  # the next whole second after it
    assert [at for _, at in scheduled_deliveries()] == [due], "one job, never one per run"

    clock.move_to(due)
    run_jobs()
    message.refresh_from_db()
    assert message.status == Message.Status.SENT
    assert len(mail.outbox) == 1
    assert scheduled_deliveries() == []


def test_a_transient_failure_schedules_the_next_attempt_on_the_next_whole_second(
    clock, settings, django_capture_on_commit_callbacks
):
    (message,) = messages_create([reminder()])
    settings.EMAIL_BACKEND = f"{__name__}.ProviderDown"
    with django_capture_on_commit_callbacks(execute=True):
        assert message_deliver(message_id=message.pk) == "retrying"
    assert [at for _, at in scheduled_deliveries()] == [dt.datetime(2026, 3, 2, 12, 0, 31, tzinfo=dt.UTC)]


class BreaksUnexpectedly:
    """An email backend failing in a way no transport foresaw (a bug, a library's surprise)."""

    def __init__(self, *args, **kwargs) -> None:
        self.fail_silently = False

    def send_messages(self, messages):
        raise KeyError("x-message-id")


def test_an_unexpected_error_while_sending_fails_the_message_with_its_reason_instead_of_leaving_it_sending(
    clock, settings
):
    (message,) = messages_create([reminder()])
    settings.EMAIL_BACKEND = f"{__name__}.BreaksUnexpectedly"

    assert deliver(message.pk) == "failed"
    message.refresh_from_db()
    assert message.status == Message.Status.FAILED
    assert message.error == UNEXPECTED_FAILURE % {"error": repr(KeyError("x-message-id"))}
    assert message.failed_at == NOW


# ---------------------------------------------------------------------------------------------
# The database connection drops right after the provider accepted


class CutsTheDatabaseConnection(BaseEmailBackend):
    """Accepts the email and, while doing so, has PostgreSQL terminate the worker's own connection
    (from a second connection), as a failover or a restart would."""

    sent: list = []

    def send_messages(self, messages) -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            (worker_pid,) = cursor.fetchone()
        with psycopg.connect(**_libpq_params(), autocommit=True) as admin:
            # With a timeout, pg_terminate_backend waits until that backend has exited.
            (terminated,) = admin.execute("SELECT pg_terminate_backend(%s, 10000)", [worker_pid]).fetchone()
        assert terminated
        self.sent.extend(messages)
        return len(messages)


def _libpq_params() -> dict:
    db = connection.settings_dict
    params = {"dbname": db["NAME"], "user": db["USER"], "host": db["HOST"], "port": db["PORT"]}
    if db["PASSWORD"]:
        params["password"] = db["PASSWORD"]
    return {key: value for key, value in params.items() if value not in ("", None)}


@pytest.mark.django_db(transaction=True)
def test_a_database_connection_lost_right_after_the_provider_accepted_still_records_one_sent_message(clock, settings):
    settings.EMAIL_BACKEND = f"{__name__}.CutsTheDatabaseConnection"
    CutsTheDatabaseConnection.sent = []
    (message,) = messages_create([reminder()])

    assert deliver(message.pk) == "sent"

    (email,) = CutsTheDatabaseConnection.sent
    message.refresh_from_db()
    assert message.status == Message.Status.SENT
    assert message.provider_message_id == email.extra_headers["Message-ID"]
    assert message.sent_at is not None
    assert message.attempts == 1
    assert deliver(message.pk) == "not claimable"
    assert len(CutsTheDatabaseConnection.sent) == 1, "sent exactly once"


# ---------------------------------------------------------------------------------------------
# Redis restarted empty; a worker killed mid-send (real processes)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.05)


class RedisServer:
    """A redis-server of the test's own, on a free port, that keeps nothing on disk: restarted, it is empty."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        wait_for(lambda: _answers(client), "redis-server to start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(DEADLINE)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
def own_redis(settings):
    server = RedisServer()
    server.start()
    settings.RQ_QUEUES = {name: {"URL": server.url, "DEFAULT_TIMEOUT": 120} for name in ("default", "messages")}
    yield server
    server.kill()


@pytest.fixture
def smtp_server():
    with FaultySmtpServer() as server:
        yield server


@pytest.fixture
def any_time_rules():
    """Contact rules that allow every moment: these tests run workers on the machine's real clock."""
    return ContactRules.objects.create(
        name="Any time",
        window_start=dt.time(0),
        window_end=dt.time(23, 59, 59, 999_999),
        contact_days=[0, 1, 2, 3, 4, 5, 6],
        max_contacts_per_week=100,
    )


@pytest.fixture
def worker(own_redis, smtp_server):
    """Start `manage.py rqworker messages` as its own process, against this test's database, Redis
    and SMTP server, with the project's settings as production reads them (EMAIL_URL)."""
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    env = os.environ | {
        "DATABASE_URL": f"postgres://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": own_redis.url,
        "EMAIL_URL": f"smtp://{smtp_server.hostname}:{smtp_server.port}",
        "EMAIL_TIMEOUT": "20",
    }
    started: list[subprocess.Popen] = []

    def start(*options: str) -> subprocess.Popen:
        process = subprocess.Popen(
            manage_command("rqworker", "messages", *options),  # on the test's clock, as --clock moves it
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(DEADLINE)


def due_long_ago(rules: ContactRules, count: int) -> list[Message]:
    """Messages due in the past on any clock, so a worker on the real clock claims them at once."""
    long_ago = dt.datetime(2020, 1, 6, 12, tzinfo=dt.UTC)
    return [reminder(contact_rules=rules, send_after=long_ago, created_at=long_ago) for _ in range(count)]


@pytest.mark.django_db(transaction=True)
def test_deliveries_lost_with_a_redis_restarted_empty_are_sent_once_by_the_sweeper(
    own_redis, smtp_server, any_time_rules, worker
):
    messages = messages_create(due_long_ago(any_time_rules, 5))  # enqueued as the transaction commits
    assert django_rq.get_queue("messages").count == 5

    own_redis.kill()
    own_redis.start()  # empty: every delivery job is gone
    assert django_rq.get_queue("messages").count == 0
    assert worker("--burst").wait(DEADLINE) == 0
    assert smtp_server.bodies == []
    assert Message.objects.filter(status=Message.Status.QUEUED).count() == 5

    assert jobs.sweep() == 5  # the cron's sweeper finds them overdue and enqueues them again
    assert worker("--burst").wait(DEADLINE) == 0
    assert jobs.sweep() == 0
    assert worker("--burst").wait(DEADLINE) == 0

    assert Message.objects.filter(status=Message.Status.SENT).count() == 5
    assert len(smtp_server.accepted) == 5
    assert smtp_server.duplicates() == 0
    assert sorted(smtp_server.accepted) == sorted(
        Message.objects.filter(pk__in=[message.pk for message in messages]).values_list(
            "provider_message_id", flat=True
        )
    )


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_in_the_middle_of_a_send_never_sends_twice_and_leaves_nothing_stuck(
    own_redis, smtp_server, any_time_rules, worker
):
    smtp_server.plan("BODY", HANG, times=1)  # the first message's body arrives, its reply never does
    messages_create(due_long_ago(any_time_rules, 3))
    # SimpleWorker runs the job in the worker's own process, so killing it kills the send.
    first_worker = worker("--worker-class", "rq.worker.SimpleWorker")
    wait_for(lambda: len(smtp_server.bodies) == 1, "the first message to reach the server")
    first_worker.send_signal(signal.SIGKILL)
    first_worker.wait(DEADLINE)

    held = Message.objects.get(status=Message.Status.SENDING)
    assert held.attempts == 1
    assert worker("--burst").wait(DEADLINE) == 0  # another worker delivers the rest
    assert Message.objects.filter(status=Message.Status.SENT).count() == 2

    # The sweeper's window passes: the message that may have gone out is failed, never resent.
    assert messages_sweep(now=held.claimed_at + STUCK_AFTER + dt.timedelta(seconds=1)) == 0
    assert worker("--burst").wait(DEADLINE) == 0
    held.refresh_from_db()
    assert held.status == Message.Status.FAILED
    assert held.error == STUCK_SENDING
    assert not Message.objects.filter(status__in=[Message.Status.SENDING, Message.Status.QUEUED]).exists()
    assert len(smtp_server.bodies) == 3, "each message reached the server exactly once"
    assert len(set(smtp_server.received_ids)) == 3
    assert smtp_server.duplicates() == 0
