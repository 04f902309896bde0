from django import template
from django.utils import timezone

from dunning_site.lib import dates
from dunning_site.lib.money import format_money

register = template.Library()


@register.filter
def money(minor: int | None, currency: str) -> str:
    """Minor units shown with their currency, always: €1,234.56, ¥1,200, KWD 1.234."""
    if minor is None:
        return ""
    return format_money(minor, currency)


@register.filter(expects_localtime=True)
def moment(value) -> str:
    """A day and time in the viewer's zone (or the zone the `timezone` filter chose), with the year
    when it is not this year: "Tue 17 Mar, 09:00", "Fri 31 Dec 9999, 23:59"."""
    return dates.moment(value, value.tzinfo) if value else ""


@register.filter(expects_localtime=True)
def day(value) -> str:
    """A day alone, with the year when it is not this year: "5 Mar", "30 Dec 2025". Also an ISO
    day as a timeline event's data keeps it ("2026-12-10")."""
    if isinstance(value, str):
        return dates.days_in_words(value)
    return dates.day(value, getattr(value, "tzinfo", None)) if value else ""


@register.filter
def days_in_words(text: str) -> str:
    """Free text (a hold's reason) with its ISO days written like every other day on the page."""
    return dates.days_in_words(text) if text else ""


@register.simple_tag
def part_of_day() -> str:
    """Now in the viewer's zone: "morning", "afternoon" or "evening", for a greeting."""
    return dates.part_of_day(timezone.now())


@register.filter
def days_since(day, today) -> int:
    return max((today - day).days, 0)


# The timeline speaks the finance team's language; the dotted type stays in the audit data.
EVENT_TITLES = {
    "collections.case.opened": "Case opened",
    "collections.case.invoice_added": "Invoice added to the case",
    "collections.case.amount_changed": "Amount overdue changed",
    "collections.case.assigned": "Assigned",
    "collections.case.paused": "Put on hold",
    "collections.case.resumed": "Resumed",
    "collections.case.resolved": "Paid: case resolved",
    "collections.case.written_off": "Written off",
    "collections.case.partly_written_off": "Partly written off",
    "collections.case.escalated": "Escalated: next step now",
    "collections.case.suspended": "Service suspended",
    "collections.case.reinstated": "Service reinstated",
    "collections.case.note": "Note",
    "collections.case.note_added": "Note",
    "collections.case.tampered": "Changed outside the application",
    "collections.step.performed": "Step performed",
    "collections.step.skipped": "Step skipped",
    "collections.step.failed": "Step failed",
    "collections.case.resume_failed": "Could not resume",
    "collections.case.join_failed": "Invoices could not be added",
    "collections.step.brought_forward": "Step brought forward",
    "collections.step.drafted": "Draft written for review",
    "collections.approval.requested": "Approval requested",
    "collections.approval.approved": "Approved",
    "collections.approval.rejected": "Rejected",
    "collections.message.composed": "Message drafted",
    "collections.message.edited": "Message personalized",
    "collections.message.released": "Message released",
    "collections.message.scheduled": "Message scheduled",
    "collections.message.sent": "Message sent",
    "collections.message.delivered": "Message delivered",
    "collections.message.opened": "Message opened",
    "collections.message.clicked": "Link clicked",
    "collections.message.bounced": "Message bounced",
    "collections.message.deferred": "Message held back",
    "collections.message.cancelled": "Message cancelled",
    "collections.message.refreshed": "Message updated to the amounts owed now",
    "collections.message.review_asked": "Message back to draft: the amounts changed",
    "collections.call.logged": "Call logged",
    "collections.promise.made": "Promise to pay recorded",
    "collections.promise.kept": "Promise kept",
    "collections.promise.partly_kept": "Promise partly kept",
    "collections.promise.broken": "Promise broken",
    "collections.promise.cancelled": "Promise cancelled",
    "collections.payment.failed": "Payment failed",
    "collections.payment.refunded": "Payment refunded",
    "collections.payment.retry_succeeded": "Payment retry succeeded",
    "collections.payment.new_card": "New card on file",
    "collections.payment.customer_asked": "Customer asked to act on their payment",
    "collections.payment.budget_spent": "Retries used up",
    "collections.payment.recorded": "Payment recorded",
    "collections.dispute.opened": "Dispute opened",
    "collections.dispute.closed": "Dispute closed",
    "collections.subscription.changed": "Subscription changed",
    "collections.subscription.collection_paused": "Subscription collection paused",
    "collections.subscription.collection_resumed": "Subscription collection resumed",
    "collections.service_hook.delivered": "Service system told",
    "collections.service_hook.failed": "Service system unreachable",
    "collections.service_hook.superseded": "Service change superseded",
}


@register.filter
def event_title(event_type: str) -> str:
    """A timeline entry's title: "Step performed", never "collections.step.performed"."""
    if event_type in EVENT_TITLES:
        return EVENT_TITLES[event_type]
    words = event_type.split(".", 1)[-1].replace(".", " ").replace("_", " ")
    return words[:1].upper() + words[1:]
