"""RQ jobs: ids in, one service call."""

import dataclasses

import django_rq
from django.utils import timezone

from dunning_site.collections import payment_retries, predunning, service_hooks, stripe_events, stripe_updates
from dunning_site.collections import tick as engine
from dunning_site.lib.heartbeat import TICK, heartbeat_record


def tick() -> dict:
    result = dataclasses.asdict(engine.tick())
    # For the health endpoint: an operator's monitor sees a stopped cron or a stuck worker by its age.
    heartbeat_record(TICK, at=timezone.now(), connection=django_rq.get_connection("default"))
    return result


def billing_event_process(billing_event_id: int) -> str:
    return stripe_events.billing_event_process(billing_event_id=billing_event_id)


def retries_perform() -> int:
    return payment_retries.retries_perform_due()


def service_hook_deliver(delivery_id: int) -> str:
    return service_hooks.service_hook_deliver(delivery_id=delivery_id)


def service_hooks_sweep() -> int:
    return service_hooks.service_hooks_sweep()


def predunning_run() -> int:
    return predunning.predunning_run()


def subscription_collection_set(case_id: int, paused: bool) -> list[str]:
    return stripe_updates.subscription_collection_set(case_id=case_id, paused=paused)


def invoice_paid_elsewhere(invoice_id: int) -> str:
    return stripe_updates.invoice_paid_elsewhere(invoice_id=invoice_id)


def invoice_mark_uncollectible(invoice_id: int) -> str:
    return stripe_updates.invoice_mark_uncollectible(invoice_id=invoice_id)


def credit_note_issue(credit_note_id: int) -> str:
    return stripe_updates.credit_note_issue(credit_note_id=credit_note_id)
