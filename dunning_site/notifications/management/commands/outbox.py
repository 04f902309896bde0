from django.core.management.base import BaseCommand
from django.utils import timezone

from dunning_site.notifications.selectors import outbox_summary

NOTHING_HELD = "Nothing is held back by the contact rules."


class Command(BaseCommand):
    help = (
        "Say what the outbox holds: messages sent, due now, held back by a contact rule (and until when), "
        "drafts waiting for a collector. Times in UTC."
    )

    def handle(self, *args, **options) -> None:
        summary = outbox_summary()
        now = timezone.now()
        self.stdout.write(
            f"Outbox at {now:%a %d %b %H:%M} UTC: {summary.sent} sent, {summary.failed} failed, "
            f"{summary.due} due now, {sum(group.count for group in summary.held)} held by the contact rules, "
            f"{summary.drafts} drafts waiting for a collector."
        )
        if not summary.held:
            self.stdout.write(NOTHING_HELD)
            return
        for group in summary.held:
            self.stdout.write(
                f"  {group.count} held: {group.reason}; the first goes at {group.until:%a %d %b %H:%M} UTC."
            )
