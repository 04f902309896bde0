"""RQ jobs: ids in, one service call."""

import dataclasses

from dunning_site.collections import billing, predunning, service_hooks, services


def tick() -> dict:
    return dataclasses.asdict(services.tick())


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
