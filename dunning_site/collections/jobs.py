"""RQ jobs: ids in, one service call."""

import dataclasses

import django_rq
from django.utils import timezone

from dunning_site.collections import billing, predunning, service_hooks, services
from dunning_site.lib.heartbeat import TICK, heartbeat_record


def tick() -> dict:
    result = dataclasses.asdict(services.tick())
    # For the health endpoint: an operator's monitor sees a stopped cron or a stuck worker by its age.
    heartbeat_record(TICK, at=timezone.now(), connection=django_rq.get_connection("default"))
    return result


def billing_event_process(billing_event_id: int) -> str:
    return billing.billing_event_process(billing_event_id=billing_event_id)


def retries_perform() -> int:
    return billing.retries_perform_due()


def service_hook_deliver(delivery_id: int) -> str:
    return service_hooks.service_hook_deliver(delivery_id=delivery_id)


def service_hooks_sweep() -> int:
    return service_hooks.service_hooks_sweep()


def predunning_run() -> int:
    return predunning.predunning_run()


def subscription_collection_set(case_id: int, paused: bool) -> list[str]:
    return billing.subscription_collection_set(case_id=case_id, paused=paused)


def invoice_paid_elsewhere(invoice_id: int) -> str:
    return billing.invoice_paid_elsewhere(invoice_id=invoice_id)


def invoice_mark_uncollectible(invoice_id: int) -> str:
    return billing.invoice_mark_uncollectible(invoice_id=invoice_id)
