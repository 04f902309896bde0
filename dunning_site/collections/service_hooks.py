"""The outgoing webhook that suspends and reinstates service in the customer's product.

When the engine suspends a case (or payment reinstates it), a `ServiceHookDelivery` row is written
in the same transaction and a job POSTs it to `SERVICE_WEBHOOK_URL` once that transaction commits.
Anything but a 2xx answer is retried with backoff; after `MAX_ATTEMPTS` the delivery is failed and
the case's timeline says so, so a collector knows the product was not told.

What the receiver gets (the Stripe scheme, with our header names)::

    POST <SERVICE_WEBHOOK_URL>
    Content-Type: application/json
    Dunning-Timestamp: 1772452800
    Dunning-Signature: v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd

    {"created": 1772452800, "data": {...}, "id": "hook_…", "type": "service.suspend"}

How a receiver verifies a request (copy `verify_signature` below, it needs only the standard library):

1. Take the raw request body as bytes, before any JSON parsing: the signature covers those bytes.
2. Compute HMAC-SHA256 with the shared secret (`SERVICE_WEBHOOK_SECRET`) over
   `<Dunning-Timestamp> + "." + <body>`, in hex.
3. Compare it in constant time with each `v1=` value of `Dunning-Signature`.
4. Refuse timestamps more than 5 minutes from your clock, so a captured request cannot be replayed.
5. Answer 2xx quickly. A request may arrive more than once (a lost answer is retried): the payload's
   `id` is unique per delivery, and suspending a suspended customer should do nothing.
"""

import datetime as dt
import hashlib
import hmac
import json
import logging
import time
import uuid

import django_rq
import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from redis.exceptions import RedisError
from rq import Retry
from rq.job import Job, JobStatus

from dunning_site.collections import timeline
from dunning_site.collections.models import Case, ServiceHookDelivery
from dunning_site.lib.money import format_money

logger = logging.getLogger(__name__)

QUEUE_NAME = "default"
# Seconds between attempts after a failure: eight attempts over about a day, like Stripe's own
# webhooks give a receiver time to come back from an outage.
BACKOFF = [60, 300, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600]
MAX_ATTEMPTS = len(BACKOFF) + 1
TIMEOUT_SECONDS = 10
SIGNATURE_TOLERANCE_SECONDS = 300

TIMESTAMP_HEADER = "Dunning-Timestamp"
SIGNATURE_HEADER = "Dunning-Signature"
SIGNATURE_SCHEME = "v1"

# Machine-readable, for the receiver; a caller may pass a more precise one.
DEFAULT_REASONS = {
    ServiceHookDelivery.Action.SUSPEND: "payment_overdue",
    ServiceHookDelivery.Action.REINSTATE: "case_resolved",
}

NO_SECRET = "SERVICE_WEBHOOK_SECRET is not set, and a receiver must refuse an unsigned request: nothing was sent."
UNEXPECTED_STATUS = "HTTP %(status)d: %(body)s"
GAVE_UP = "Gave up after %(attempts)d attempts: %(error)s"
SUPERSEDED = "Superseded by a newer request to %(action)s service (delivery %(delivery)d) before it was delivered."


class ServiceHookNotDelivered(Exception):
    """Raised by the job so RQ tries again later; the delivery stays pending."""


# ---------------------------------------------------------------------------------------------
# Signing: `verify_signature` is what receivers copy.


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of `<timestamp>.<body>`."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str,
    timestamp: str | None,
    body: bytes | str,
    header: str | None,
    tolerance: int = SIGNATURE_TOLERANCE_SECONDS,
) -> bool:
    """True when `header` (the Dunning-Signature value) signs this timestamp and raw body with
    `secret`, and the timestamp is within `tolerance` seconds of now. Several `v1=` values may be
    given, comma-separated (while a secret is being rotated): one match is enough."""
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(time.time() - sent_at) > tolerance:
        return False
    if isinstance(body, str):
        body = body.encode()
    expected = sign(secret, timestamp, body).encode()
    prefix = f"{SIGNATURE_SCHEME}="
    parts = (part.strip() for part in (header or "").split(","))
    candidates = [part.removeprefix(prefix) for part in parts if part.startswith(prefix)]
    return any(hmac.compare_digest(expected, candidate.encode()) for candidate in candidates)


# ---------------------------------------------------------------------------------------------
# Requesting a call: a row first, a job after commit.


@transaction.atomic
def service_hook_request(
    *, case: Case, action: str, reason: str | None = None, now: dt.datetime | None = None
) -> ServiceHookDelivery | None:
    """Ask the customer's product to suspend or reinstate service for this case's customer.

    Does nothing (returns None) when no SERVICE_WEBHOOK_URL is configured: the engine's own
    timeline entry is then the only record. Older deliveries of the same case still pending are
    superseded, so a suspension still being retried can never land after the reinstatement.
    """
    url = settings.SERVICE_WEBHOOK_URL
    if not url:
        return None
    action = ServiceHookDelivery.Action(action)
    now = now or timezone.now()
    delivery = ServiceHookDelivery.objects.create(
        case=case,
        action=action,
        url=url,
        payload=_payload(case, action, reason or DEFAULT_REASONS[action], now),
        created_at=now,
    )
    _supersede_pending(case, newer=delivery, now=now)
    # robust: if Redis is unreachable the row stays pending and `service_hooks_sweep` enqueues it later.
    transaction.on_commit(lambda: _enqueue(delivery.pk), robust=True)
    return delivery


def _payload(case: Case, action: str, reason: str, now: dt.datetime) -> dict:
    customer = case.customer
    return {
        "id": f"hook_{uuid.uuid4().hex}",
        "type": f"service.{action}",
        "created": int(now.timestamp()),
        "data": {
            "customer": {"id": customer.pk, "external_id": customer.external_id, "email": customer.email},
            "case": {
                "id": case.pk,
                "currency": case.currency,
                "amount_overdue": case.amount_overdue,
                "amount_overdue_display": format_money(case.amount_overdue, case.currency),
            },
            "reason": reason,
        },
    }


def _supersede_pending(case: Case, *, newer: ServiceHookDelivery, now: dt.datetime) -> None:
    # Waits for a delivery being sent right now (its row is locked): once sent, it is no longer pending.
    older = (
        ServiceHookDelivery.objects.select_for_update(of=("self",))
        .filter(case=case, status=ServiceHookDelivery.Status.PENDING)
        .exclude(pk=newer.pk)
    )
    for delivery in older:
        delivery.status = ServiceHookDelivery.Status.FAILED
        delivery.last_error = SUPERSEDED % {"action": newer.action, "delivery": newer.pk}
        delivery.save(update_fields=["status", "last_error"])
        timeline.case_event_record(
            case,
            "collections.service_hook.superseded",
            at=now,
            **_event_data(delivery),
            superseded_by=newer.pk,
        )


def _job_id(delivery_id: int) -> str:
    return f"service-hook-{delivery_id}"


def _enqueue(delivery_id: int) -> None:
    # By name: the jobs module sits above this one.
    service_hook_deliver = "dunning_site.collections.jobs.service_hook_deliver"

    try:
        django_rq.get_queue(QUEUE_NAME).enqueue(
            service_hook_deliver,
            delivery_id,
            job_id=_job_id(delivery_id),
            retry=Retry(max=len(BACKOFF), interval=BACKOFF),
            result_ttl=0,
        )
    except RedisError as error:
        logger.warning("Could not enqueue service hook delivery %d (%s); the sweeper will.", delivery_id, error)


# ---------------------------------------------------------------------------------------------
# Delivering


def service_hook_deliver(*, delivery_id: int, now: dt.datetime | None = None) -> str:
    """POST one pending delivery; returns "delivered", "failed" or "not claimable".

    A non-2xx answer or a connection error is recorded and raises `ServiceHookNotDelivered`, so
    RQ tries again after the next backoff interval; the last attempt fails the delivery instead.

    The row stays locked while the request is in flight (at most TIMEOUT_SECONDS), so a second job
    for the same delivery (one re-enqueued by the sweeper) skips it instead of sending it twice.
    A delivered or failed row is never sent again.
    """
    now = now or timezone.now()
    with transaction.atomic():
        delivery = (
            ServiceHookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("case")
            .filter(pk=delivery_id, status=ServiceHookDelivery.Status.PENDING)
            .first()
        )
        if delivery is None:
            return "not claimable"
        secret = settings.SERVICE_WEBHOOK_SECRET
        if not secret:
            delivery.last_error = NO_SECRET
            return _fail(delivery, now)
        status_code, error = _post(delivery, secret, now)
        delivery.attempts += 1
        delivery.response_status = status_code
        delivery.last_error = error
        if not error:
            delivery.status = ServiceHookDelivery.Status.DELIVERED
            delivery.delivered_at = now
            delivery.save(update_fields=["status", "attempts", "response_status", "last_error", "delivered_at"])
            timeline.case_event_record(
                delivery.case, "collections.service_hook.delivered", at=now, **_event_data(delivery)
            )
            return "delivered"
        if delivery.attempts >= MAX_ATTEMPTS:
            delivery.last_error = GAVE_UP % {"attempts": delivery.attempts, "error": error}
            return _fail(delivery, now)
        delivery.save(update_fields=["attempts", "response_status", "last_error"])
    # Raised after the commit, so the attempt stays recorded.
    raise ServiceHookNotDelivered(error)


def _post(delivery: ServiceHookDelivery, secret: str, now: dt.datetime) -> tuple[int | None, str]:
    """Send it; returns the response status (None when there was no response) and an error, empty on 2xx."""
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = str(int(now.timestamp()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "dunning-service-hook/1",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: f"{SIGNATURE_SCHEME}={sign(secret, timestamp, body)}",
    }
    try:
        # A redirect is not followed: it would turn the POST into a GET, and is a misconfigured URL.
        response = requests.post(
            delivery.url, data=body, headers=headers, timeout=TIMEOUT_SECONDS, allow_redirects=False
        )
    except requests.RequestException as error:
        return None, f"{type(error).__name__}: {error}"[:1000]
    if 200 <= response.status_code < 300:
        return response.status_code, ""
    return response.status_code, UNEXPECTED_STATUS % {"status": response.status_code, "body": response.text[:500]}


def _fail(delivery: ServiceHookDelivery, now: dt.datetime) -> str:
    delivery.status = ServiceHookDelivery.Status.FAILED
    delivery.save(update_fields=["status", "attempts", "response_status", "last_error"])
    timeline.case_event_record(
        delivery.case, "collections.service_hook.failed", at=now, **_event_data(delivery), error=delivery.last_error
    )
    return "failed"


def _event_data(delivery: ServiceHookDelivery) -> dict:
    return {
        "delivery_id": delivery.pk,
        "action": delivery.action,
        "status_code": delivery.response_status,
        "attempts": delivery.attempts,
    }


# ---------------------------------------------------------------------------------------------
# Lost jobs

LIVE_JOB_STATUSES = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.STARTED, JobStatus.DEFERRED}


def service_hooks_sweep(*, now: dt.datetime | None = None) -> int:
    """Enqueue again the pending deliveries whose job is gone (Redis was down at commit, or lost
    its data). Returns how many. A job still queued, scheduled for a retry or running is left alone."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(seconds=settings.DUNNING_SWEEP_AFTER_SECONDS)
    pending = list(
        ServiceHookDelivery.objects.filter(status=ServiceHookDelivery.Status.PENDING, created_at__lte=cutoff)
        .order_by("pk")
        .values_list("pk", flat=True)[:1000]
    )
    if not pending:
        return 0
    jobs = Job.fetch_many([_job_id(pk) for pk in pending], connection=django_rq.get_connection(QUEUE_NAME))
    lost = [
        pk
        for pk, job in zip(pending, jobs, strict=True)
        if job is None or job.get_status(refresh=False) not in LIVE_JOB_STATUSES
    ]
    for pk in lost:
        _enqueue(pk)
    if lost:
        logger.info("Re-enqueued %d service hook deliveries whose job was lost", len(lost))
    return len(lost)
