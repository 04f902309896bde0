"""The outgoing service webhook, received by a real HTTP server on 127.0.0.1.

The server records every request and answers with the status codes a test queues up; retries
are driven by the real RQ worker with its scheduler (`run_jobs`) while time-machine moves the
clock past each backoff interval, so nothing sleeps.
"""

import datetime as dt
import socket

import pytest
import time_machine

from dunning_site.accounts.services import payment_record
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory
from dunning_site.collections import case_core, jobs, tick
from dunning_site.collections.models import Case, CaseEvent, ServiceHookDelivery, Step
from dunning_site.collections.service_hooks import (
    BACKOFF,
    GAVE_UP,
    MAX_ATTEMPTS,
    NO_SECRET,
    SIGNATURE_HEADER,
    SUPERSEDED,
    TIMESTAMP_HEADER,
    ServiceHookNotDelivered,
    service_hook_deliver,
    service_hook_request,
    service_hooks_sweep,
    sign,
    verify_signature,
)
from dunning_site.collections.tests.factories import PolicyFactory, ladder

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
SECRET = "whsec_test_0123456789abcdef"
SUSPEND = ServiceHookDelivery.Action.SUSPEND
REINSTATE = ServiceHookDelivery.Action.REINSTATE


@pytest.fixture(autouse=True)
def hook_settings(settings, receiver):
    settings.SERVICE_WEBHOOK_URL = receiver.url
    settings.SERVICE_WEBHOOK_SECRET = SECRET
    return settings


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def case(clock) -> Case:
    customer = CustomerFactory(external_id="cus_Q1", email="billing@acme.example")
    invoice = InvoiceFactory(
        customer=customer, currency="EUR", total=123_400, due_on=NOW.date() - dt.timedelta(days=31)
    )
    policy = PolicyFactory()
    ladder(policy, (30, Step.Action.SUSPEND_SERVICE, "final", False))
    return case_core.case_open(customer=customer, currency="EUR", policy=policy, invoices=[invoice], now=NOW)


@pytest.fixture
def request_hook(django_capture_on_commit_callbacks):
    """Request a hook as a service would, in a transaction that commits (so its job is enqueued)."""

    def request(case: Case, action: str = SUSPEND, **kwargs) -> ServiceHookDelivery | None:
        with django_capture_on_commit_callbacks(execute=True):
            return service_hook_request(case=case, action=action, **kwargs)

    return request


def timeline(case: Case, prefix: str = "collections.service_hook.") -> list[CaseEvent]:
    return list(CaseEvent.objects.filter(case=case, type__startswith=prefix).order_by("at", "pk"))


# ---------------------------------------------------------------------------------------------
# Signatures, as a receiver checks them


def test_a_receiver_accepts_a_good_signature_and_refuses_anything_else(clock):
    body = b'{"id":"hook_1","type":"service.suspend"}'
    timestamp = str(int(NOW.timestamp()))
    header = f"v1={sign(SECRET, timestamp, body)}"

    assert verify_signature(SECRET, timestamp, body, header)
    assert verify_signature(SECRET, timestamp, body.decode(), header)
    assert verify_signature(SECRET, timestamp, body, f"v1=deadbeef, {header}"), "one match among several is enough"
    assert not verify_signature("whsec_wrong", timestamp, body, header)
    assert not verify_signature(SECRET, timestamp, body.replace(b"suspend", b"reinstate"), header)
    assert not verify_signature(SECRET, str(int(timestamp) + 1), body, header), "the timestamp is signed too"
    assert not verify_signature(SECRET, timestamp, body, header.removeprefix("v1="))
    assert not verify_signature(SECRET, "yesterday", body, header)
    assert not verify_signature(SECRET, None, body, None), "headers missing from the request"
    clock.shift(dt.timedelta(seconds=301))
    assert not verify_signature(SECRET, timestamp, body, header), "too old: a replay"
    assert verify_signature(SECRET, timestamp, body, header, tolerance=600)


# ---------------------------------------------------------------------------------------------
# Delivery


def test_suspending_posts_one_signed_request_with_the_case_and_customer(case, receiver, request_hook, run_jobs):
    delivery = request_hook(case, SUSPEND)
    run_jobs()

    assert len(receiver.requests) == 1
    received = receiver.requests[0]
    assert (received.method, received.path) == ("POST", "/hooks/dunning")
    assert received.headers["Content-Type"] == "application/json"
    assert received.headers[TIMESTAMP_HEADER] == str(int(NOW.timestamp()))
    assert received.headers[SIGNATURE_HEADER].startswith("v1=")
    assert received.is_signed_with(SECRET)
    assert not received.is_signed_with("whsec_someone_else")
    assert received.json == {
        "id": delivery.payload["id"],
        "type": "service.suspend",
        "created": int(NOW.timestamp()),
        "data": {
            "customer": {"id": case.customer.pk, "external_id": "cus_Q1", "email": "billing@acme.example"},
            "case": {
                "id": case.pk,
                "currency": "EUR",
                "amount_overdue": 123_400,
                "amount_overdue_display": "€1,234.00",
            },
            "reason": "payment_overdue",
        },
    }
    assert received.json["id"].startswith("hook_")

    delivery.refresh_from_db()
    assert delivery.status == ServiceHookDelivery.Status.DELIVERED
    assert (delivery.attempts, delivery.response_status, delivery.last_error) == (1, 200, "")
    assert delivery.delivered_at == NOW
    assert delivery.url == receiver.url
    (event,) = timeline(case)
    assert event.type == "collections.service_hook.delivered"
    assert event.data == {"delivery_id": delivery.pk, "action": "suspend", "status_code": 200, "attempts": 1}


def test_a_500_is_retried_after_the_backoff_and_then_delivered(case, clock, receiver, request_hook, run_jobs):
    receiver.answer(500, 200)
    delivery = request_hook(case, REINSTATE)
    run_jobs()

    delivery.refresh_from_db()
    assert delivery.status == ServiceHookDelivery.Status.PENDING
    assert (delivery.attempts, delivery.response_status) == (1, 500)
    assert delivery.last_error == "HTTP 500: receiver is down"
    assert timeline(case) == [], "a retry is not an outcome yet"

    run_jobs()
    assert len(receiver.requests) == 1, "the retry waits for its backoff interval"

    clock.shift(dt.timedelta(seconds=BACKOFF[0]))
    run_jobs()
    assert len(receiver.requests) == 2
    first, second = receiver.requests
    assert first.body == second.body, "the same event, with the same id"
    assert int(second.headers[TIMESTAMP_HEADER]) - int(first.headers[TIMESTAMP_HEADER]) == BACKOFF[0]
    assert second.is_signed_with(SECRET)
    delivery.refresh_from_db()
    assert delivery.status == ServiceHookDelivery.Status.DELIVERED
    assert (delivery.attempts, delivery.response_status, delivery.last_error) == (2, 200, "")
    assert delivery.delivered_at == NOW + dt.timedelta(seconds=BACKOFF[0])
    (event,) = timeline(case)
    assert (event.type, event.data["action"], event.data["attempts"]) == (
        "collections.service_hook.delivered",
        "reinstate",
        2,
    )


def test_a_receiver_that_never_answers_2xx_fails_the_delivery_after_the_budget(
    case, clock, receiver, request_hook, run_jobs
):
    receiver.answer(503)
    delivery = request_hook(case, SUSPEND)
    run_jobs()
    for delay in BACKOFF:
        clock.shift(dt.timedelta(seconds=delay))
        run_jobs()

    assert len(receiver.requests) == MAX_ATTEMPTS == len(BACKOFF) + 1
    delivery.refresh_from_db()
    assert delivery.status == ServiceHookDelivery.Status.FAILED
    assert (delivery.attempts, delivery.response_status) == (MAX_ATTEMPTS, 503)
    assert delivery.last_error == GAVE_UP % {"attempts": MAX_ATTEMPTS, "error": "HTTP 503: receiver is down"}
    assert delivery.delivered_at is None
    (event,) = timeline(case)
    assert event.type == "collections.service_hook.failed"
    assert event.data == {
        "delivery_id": delivery.pk,
        "action": "suspend",
        "status_code": 503,
        "attempts": MAX_ATTEMPTS,
        "error": delivery.last_error,
    }

    clock.shift(dt.timedelta(days=7))
    run_jobs()
    assert len(receiver.requests) == MAX_ATTEMPTS, "nothing is left scheduled"


def test_a_receiver_that_cannot_be_reached_is_retried(case, hook_settings, request_hook):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        hook_settings.SERVICE_WEBHOOK_URL = f"http://127.0.0.1:{probe.getsockname()[1]}/hooks"
    delivery = request_hook(case, SUSPEND)

    with pytest.raises(ServiceHookNotDelivered):
        jobs.service_hook_deliver(delivery.pk)

    delivery.refresh_from_db()
    assert delivery.status == ServiceHookDelivery.Status.PENDING
    assert (delivery.attempts, delivery.response_status) == (1, None)
    assert delivery.last_error.startswith("ConnectionError: ")


def test_a_delivered_hook_is_never_sent_again(case, receiver, request_hook, run_jobs):
    delivery = request_hook(case, SUSPEND)
    run_jobs()
    assert jobs.service_hook_deliver(delivery.pk) == "not claimable"
    assert service_hook_deliver(delivery_id=delivery.pk) == "not claimable"

    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert delivery.attempts == 1
    assert len(timeline(case)) == 1


def test_without_a_url_nothing_is_created_or_enqueued(case, hook_settings, receiver, request_hook, redis_connection):
    hook_settings.SERVICE_WEBHOOK_URL = ""

    assert request_hook(case, SUSPEND) is None

    assert not ServiceHookDelivery.objects.exists()
    assert redis_connection.llen("rq:queue:default") == 0
    assert receiver.requests == []
    assert timeline(case) == []


def test_without_a_secret_nothing_unsigned_is_sent(case, hook_settings, receiver, request_hook):
    hook_settings.SERVICE_WEBHOOK_SECRET = ""
    delivery = request_hook(case, SUSPEND)

    assert jobs.service_hook_deliver(delivery.pk) == "failed"

    assert receiver.requests == []
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_error) == (ServiceHookDelivery.Status.FAILED, NO_SECRET)
    (event,) = timeline(case)
    assert (event.type, event.data["error"]) == ("collections.service_hook.failed", NO_SECRET)


def test_an_unknown_action_is_refused(case):
    with pytest.raises(ValueError):
        service_hook_request(case=case, action="delete")
    assert not ServiceHookDelivery.objects.exists()


def test_a_reinstatement_supersedes_a_suspension_still_being_retried(case, clock, receiver, request_hook, run_jobs):
    """Otherwise the suspension's next retry could land after the reinstatement and cut off a
    customer who has paid."""
    receiver.answer(500, 200)
    suspension = request_hook(case, SUSPEND)
    run_jobs()
    reinstatement = request_hook(case, REINSTATE)
    for delay in BACKOFF[:2]:
        clock.shift(dt.timedelta(seconds=delay))
        run_jobs()

    assert [received.json["type"] for received in receiver.requests] == ["service.suspend", "service.reinstate"]
    suspension.refresh_from_db()
    reinstatement.refresh_from_db()
    assert suspension.status == ServiceHookDelivery.Status.FAILED
    assert suspension.last_error == SUPERSEDED % {"action": "reinstate", "delivery": reinstatement.pk}
    assert reinstatement.status == ServiceHookDelivery.Status.DELIVERED
    assert [(event.type, event.data["action"]) for event in timeline(case)] == [
        ("collections.service_hook.superseded", "suspend"),
        ("collections.service_hook.delivered", "reinstate"),
    ]


def test_the_sweeper_enqueues_a_delivery_whose_job_was_lost(
    case, clock, django_capture_on_commit_callbacks, hook_settings, receiver, request_hook, redis_connection, run_jobs
):
    delivery = request_hook(case, SUSPEND)
    redis_connection.flushdb()  # Redis restarted: the job is gone
    run_jobs()
    assert receiver.requests == []

    assert service_hooks_sweep() == 0, "too early: the job may just be waiting in the queue"
    clock.shift(dt.timedelta(seconds=hook_settings.DUNNING_SWEEP_AFTER_SECONDS))
    # The sweep runs as a job, outside any transaction, so django-rq enqueues at once; here the test's
    # transaction is open, and django-rq waits for its commit.
    with django_capture_on_commit_callbacks(execute=True):
        assert service_hooks_sweep() == 1
    assert service_hooks_sweep() == 0, "its job is queued now"
    run_jobs()

    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert delivery.status == ServiceHookDelivery.Status.DELIVERED


def test_the_sweeper_leaves_a_delivery_waiting_for_its_retry_alone(
    case, clock, hook_settings, receiver, request_hook, run_jobs
):
    receiver.answer(500)
    request_hook(case, SUSPEND)
    run_jobs()
    clock.shift(dt.timedelta(seconds=hook_settings.DUNNING_SWEEP_AFTER_SECONDS))
    assert service_hooks_sweep() == 0


# ---------------------------------------------------------------------------------------------
# With the engine: the ladder suspends, a payment reinstates


def _overdue_case_with_a_suspension_step() -> Case:
    customer = CustomerFactory(external_id="cus_Q2")
    InvoiceFactory(customer=customer, currency="EUR", total=50_000, due_on=NOW.date() - dt.timedelta(days=31))
    policy = PolicyFactory()
    ladder(policy, (3, Step.Action.REMINDER, "friendly", False), (30, Step.Action.SUSPEND_SERVICE, "final", False))
    tick.tick()
    case = Case.objects.get(customer=customer)
    assert case.service_suspended
    return case


def test_the_engine_itself_calls_the_hook_to_suspend_and_to_reinstate(
    clock, django_capture_on_commit_callbacks, receiver, run_jobs
):
    with django_capture_on_commit_callbacks(execute=True):
        case = _overdue_case_with_a_suspension_step()
    run_jobs()
    assert [received.json["type"] for received in receiver.requests] == ["service.suspend"]

    with django_capture_on_commit_callbacks(execute=True):
        payment_record(invoice=case.invoices.get(), amount=50_000)
    run_jobs()

    assert [received.json["type"] for received in receiver.requests] == ["service.suspend", "service.reinstate"]
    assert all(received.is_signed_with(SECRET) for received in receiver.requests)
    assert ServiceHookDelivery.objects.filter(case=case, status=ServiceHookDelivery.Status.DELIVERED).count() == 2
