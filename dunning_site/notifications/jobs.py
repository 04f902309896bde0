"""RQ jobs: ids in, one service call."""

from dunning_site.notifications import services


def deliver(message_id: int) -> str:
    return services.message_deliver(message_id=message_id)


def sweep() -> int:
    return services.messages_sweep()
