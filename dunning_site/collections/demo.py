"""Writing the demo book behind `manage.py seed_demo`: customers, invoices, payments, and weeks of dunning history.

`book_write` turns a plan (collections.demo_book's `build_book`, which decides what the book holds) into
rows through the real services, then replays the past weeks day by day through the real engine (`tick`),
so every case, message, approval and event is one the product itself would have written; only delivery is
pretended: messages of past days are marked sent at the first moment the contact rules allowed, today's
are left for the worker. This module also owns the demo's staff logins, the customers' sandbox cards and
the summary printed once the book is written.

The policy it duns with and its messages are not the demo's own: they are what every fresh install
gets (collections.defaults, `manage.py dunning_setup`); the demo only adds made-up customers and logins.
"""

import datetime as dt
import zlib
from collections.abc import Callable

from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Count

from dunning_site.accounts.models import Channel, Consent, Customer, Invoice, Payment, User
from dunning_site.accounts.services import customer_create, invoice_create, payment_record
from dunning_site.collections.approvals import approval_decide
from dunning_site.collections.defaults import dunning_setup
from dunning_site.collections.demo_book import Book, PlannedCustomer, PlannedInvoice, PlannedPayment
from dunning_site.collections.models import Approval, Case, CaseEvent, Step
from dunning_site.collections.tick import tick
from dunning_site.notifications import rules
from dunning_site.notifications.models import Message
from dunning_site.notifications.services import recent_contacts, recipient_of

# The engine ticks once per replayed day, late enough that every time zone's 09:00 step of that day is due.
REPLAY_HOUR = 23
LEFT_FOR_THE_WORKER = dt.timedelta(days=1)


# ---------------------------------------------------------------------------------------------
# Staff


def staff_users_ensure() -> User:
    """The demo's logins (password = username), created only when missing; returns the manager who
    approves escalations."""
    if not User.objects.filter(username="admin").exists():
        User.objects.create_superuser("admin", "admin@example.com", "admin")
    manager = User.objects.filter(username="manager").first()
    if manager is None:
        manager = User.objects.create_user(
            "manager", "manager@example.com", "manager", is_staff=True, first_name="Morgan", last_name="Reyes"
        )
        group = Group.objects.filter(name="Manager").first()
        if group is not None:
            manager.groups.add(group)
    for username, first_name, last_name, role in [
        ("collector", "Casey", "Okafor", "Collector"),
        ("viewer", "Vic", "Lindqvist", "Viewer"),
    ]:
        if not User.objects.filter(username=username).exists():
            user = User.objects.create_user(
                username, f"{username}@example.com", username, first_name=first_name, last_name=last_name
            )
            user.groups.add(*Group.objects.filter(name=role))
    return manager


# ---------------------------------------------------------------------------------------------
# Writing the book and replaying its history


def book_write(*, book: Book, now: dt.datetime, progress: Callable[[str], object]) -> None:
    with transaction.atomic():
        progress("Default policy, message templates and staff logins…")
        for line in dunning_setup().created:
            progress(f"  {line}")
        manager = staff_users_ensure()
        progress(f"{len(book.customers)} customers, {len(book.invoices)} invoices and their payments…")
        customers = _customers_create(book.customers)
        invoices = _invoices_create(book.invoices, customers)
    _replay(book=book, invoices=invoices, manager=manager, now=now, progress=progress)


# The card on file of each demo customer, named like Stripe's test payment methods, so the sandbox
# gateway's retries succeed or decline the way real cards do: mostly good cards, some declines.
DEMO_CARDS = (
    ["pm_card_visa"] * 14
    + ["pm_card_chargeDeclinedInsufficientFunds"] * 3
    + ["pm_card_chargeDeclinedExpiredCard", "pm_card_chargeDeclinedStolenCard", "pm_card_authenticationRequired"]
)


def demo_card(email: str) -> str:
    return DEMO_CARDS[zlib.crc32(email.encode()) % len(DEMO_CARDS)]


def _customers_create(planned: tuple[PlannedCustomer, ...]) -> dict[str, Customer]:
    customers = {}
    for plan in planned:
        customers[plan.email] = customer_create(
            name=plan.name,
            company=plan.company,
            email=plan.email,
            phone=plan.phone,
            time_zone=plan.time_zone,
            language=plan.language,
            segment=plan.segment,
            default_payment_method=demo_card(plan.email),
        )
    Consent.objects.bulk_create(
        Consent(
            customer=customers[plan.email],
            channel=Channel.SMS,
            granted=True,
            recorded_at=plan.signed_up_at,
            source=Consent.Source.SIGNUP,
        )
        for plan in planned
        if plan.sms_consent
    )
    return customers


def _invoices_create(planned: tuple[PlannedInvoice, ...], customers: dict[str, Customer]) -> dict[str, Invoice]:
    """Every invoice, and the payments of those never overdue (the replay pays the others on their day)."""
    invoices = {}
    for plan in planned:
        invoices[plan.number] = invoice_create(
            customer=customers[plan.customer_email],
            number=plan.number,
            currency=plan.currency,
            total=plan.total,
            issued_on=plan.issued_on,
            due_on=plan.due_on,
            hosted_payment_url=plan.hosted_payment_url,
        )
    upfront = sorted(
        (payment.at, plan.number, payment) for plan in planned if not plan.replayed for payment in plan.payments
    )
    for _, number, payment in upfront:
        _pay(invoices[number], payment)
    return invoices


def _pay(invoice: Invoice, payment: PlannedPayment) -> None:
    payment_record(
        invoice=invoice,
        amount=payment.amount,
        method=payment.method,
        at=payment.at,
        reference=invoice.number if payment.method == Payment.Method.BANK_TRANSFER else "",
    )


def _replay(
    *, book: Book, invoices: dict[str, Invoice], manager: User, now: dt.datetime, progress: Callable[[str], object]
) -> None:
    """Run the engine once per past day, then once now; past days' messages become sent history."""
    payments = sorted(
        (payment.at, plan.number, payment) for plan in book.invoices if plan.replayed for payment in plan.payments
    )
    approvers = {plan.email: plan for plan in book.customers if plan.final_notice_approval_delay}
    closes = []
    day = book.replay_start
    # History stops a full day before now: what fell due in the last 24 hours, in every time zone,
    # is left for the worker of `make run` to send when it starts, whatever the hour.
    while (close := dt.datetime.combine(day, dt.time(REPLAY_HOUR), tzinfo=dt.UTC)) < now - LEFT_FOR_THE_WORKER:
        closes.append(close)
        day += dt.timedelta(days=1)
    progress(f"Replaying {len(closes)} days of dunning, one engine tick a day, from {book.replay_start}…")
    for index, until in enumerate([*closes, now]):
        live = until == now
        events: list[tuple[dt.datetime, str, Callable[[], None]]] = []
        while payments and payments[0][0] < until:
            at, number, payment = payments.pop(0)
            events.append((at, number, lambda invoice=invoices[number], payment=payment: _pay(invoice, payment)))
        events += _approvals_due(approvers, manager, until)
        events.sort(key=lambda event: (event[0], event[1]))
        # A past day's messages are marked sent in the same transaction, so the delivery jobs its
        # commit enqueues find nothing to send; today's are left queued, for the worker to send.
        with transaction.atomic():
            for _, _, perform in events:
                perform()
            tick(now=until)
            if not live:
                _messages_deliver_history(until)
        if not live and (index + 1) % 10 == 0:
            progress(f"  … {until.date()}")


def _approvals_due(
    approvers: dict[str, PlannedCustomer], manager: User, until: dt.datetime
) -> list[tuple[dt.datetime, str, Callable[[], None]]]:
    pending = Approval.objects.filter(
        status=Approval.Status.PENDING,
        case__customer__email__in=list(approvers),
        step__action__in=[Step.Action.FINAL_NOTICE, Step.Action.SUSPEND_SERVICE],
    ).select_related("case__customer", "step")
    events = []
    for approval in pending:
        plan = approvers[approval.case.customer.email]
        delay = (
            plan.final_notice_approval_delay
            if approval.step.action == Step.Action.FINAL_NOTICE
            else plan.suspension_approval_delay
        )
        if delay is None or approval.requested_at + delay >= until:
            continue
        at = approval.requested_at + delay
        events.append(
            (
                at,
                f"approval-{plan.email}",
                lambda approval=approval, at=at, plan=plan: _approve(approval, at, manager, plan),
            )
        )
    return events


def _approve(approval: Approval, at: dt.datetime, manager: User, plan: PlannedCustomer) -> None:
    if not Approval.objects.filter(pk=approval.pk, status=Approval.Status.PENDING).exists():
        return  # the customer paid earlier that day and the request was cancelled
    approval_decide(approval=approval, approve=True, user=manager, note=plan.approval_note, now=at)


def _messages_deliver_history(until: dt.datetime) -> None:
    """Pretend the delivery worker ran through the replayed day, under the contact rules as it would:
    each message goes at the first moment its rules allow (inside the customer's hours, never on a
    Sunday, under the weekly cap), waits for a later day when that moment is after `until`, or is
    cancelled as delivery would cancel it. History that broke the rules would teach newcomers the
    product does."""
    queued = (
        Message.objects.filter(status=Message.Status.QUEUED, send_after__lte=until)
        .select_related("customer", "contact_rules")
        .prefetch_related("customer__consents")
        .order_by("send_after", "pk")
    )
    for message in queued:
        moment, decision = message.send_after, None
        for _ in range(5):  # each answer is a moment every rule allows; the loop only guards that
            decision = rules.decide(
                channel=message.channel,
                now=moment,
                rules=rules.Rules.of(message.contact_rules),
                recipient=recipient_of(message.customer),
                recent=recent_contacts(customer=message.customer, now=moment),
            )
            if decision.send or decision.cancel or decision.defer_until > until:
                break
            moment = decision.defer_until
        if decision.cancel:
            Message.objects.filter(pk=message.pk).update(
                status=Message.Status.CANCELLED, cancelled_at=moment, error=decision.reason
            )
            _message_events(message, Message.Status.CANCELLED, moment, error=decision.reason)
        elif not decision.send:
            Message.objects.filter(pk=message.pk).update(
                send_after=decision.defer_until, deferred_reason=decision.reason
            )
        else:
            Message.objects.filter(pk=message.pk).update(
                status=Message.Status.SENT,
                claimed_at=moment,
                sent_at=moment,
                deferred_reason="",
                provider_message_id=f"demo-{message.pk}",
            )
            _message_events(message, Message.Status.SENT, moment)


def _message_events(message: Message, status: str, at: dt.datetime, *, error: str = "") -> None:
    """The event the delivery receiver records, so each case's timeline shows the message leaving."""
    CaseEvent.objects.bulk_create(
        CaseEvent(
            case_id=case_id,
            type=f"collections.message.{status}",
            data={"message_id": message.pk, "channel": message.channel, "error": error},
            at=at,
        )
        for case_id in Case.messages.through.objects.filter(message=message).values_list("case_id", flat=True)
    )


def book_summary() -> list[str]:
    def counts(queryset, field: str) -> str:
        rows = queryset.values_list(field).annotate(count=Count("pk")).order_by(field)
        return ", ".join(f"{value} {count}" for value, count in rows) or "none"

    invoices = Invoice.objects.all()
    by_currency = invoices.values_list("currency").annotate(customers=Count("customer", distinct=True))
    currencies = ", ".join(f"{currency} {customers}" for currency, customers in by_currency.order_by("currency"))
    return [
        f"Customers: {Customer.objects.count()} (billed in {currencies or 'nothing yet'})",
        f"Invoices: {invoices.count()} ({counts(invoices, 'status')}), payments: {Payment.objects.count()}",
        f"Cases: {counts(Case.objects.all(), 'status')}",
        f"Approvals: {counts(Approval.objects.all(), 'status')}",
        f"Messages: {counts(Message.objects.all(), 'status')}",
    ]
