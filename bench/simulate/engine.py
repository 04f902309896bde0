"""The book played through the real engine: a local Stripe (the tests' fake, taught the customers'
behaviour), signed webhooks POSTed to /webhooks/stripe/, the tick and the RQ jobs run by a burst
SimpleWorker, and the real outbox (email through Django's locmem backend, read back as the customer).

The clock is moved with time-machine: to each customer's own moment (a failure, a new card, a payment,
a dispute) and, between them, in steps like the tick's cron would run.

Needs Django set up against a database with the schema, and a Redis (REDIS_URL) it may empty.
"""

import dataclasses
import datetime as dt
import heapq
import itertools
import json
import sys
import time

import django_rq
import time_machine
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from rq import SimpleWorker

from bench.simulate.book import Customer, CustomerState
from dunning_site.collections.tests import stripe_fake

WEBHOOK_URL = "/webhooks/stripe/"
QUEUES = ("default", "messages")


class SimulatorWorker(SimpleWorker):
    """A burst worker without the pub/sub listener (it takes the dashboard's "stop" and "kill" commands,
    which no one sends here, and waits up to a second for its thread at every burst's end)."""

    def subscribe(self) -> None:
        return None

    def unsubscribe(self) -> None:
        return None


class SimulatedStripe(stripe_fake.FakeStripe):
    """The tests' fake Stripe, where each charge's outcome is the customer's behaviour at that moment.

    Every answer Stripe would follow with a webhook (a paid invoice, a failed charge, a charge needing
    authentication) leaves the event in `pending`, for the simulator to deliver once the request is over.
    """

    def __init__(self, states: dict[str, CustomerState]) -> None:
        super().__init__()
        self.states = states  # invoice id → the customer's state
        self.pending: list[tuple[str, dict]] = []
        self._events = itertools.count(1)

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(time.time(), dt.UTC)

    def _route(self, method: str, path: str, query: dict, form: dict) -> tuple[int, dict]:
        parts = path.strip("/").split("/")[1:]
        if method == "GET" and len(parts) == 2 and parts[0] == "charges" and parts[1].startswith("ch_sim_"):
            customer = "cus_sim_" + parts[1].removeprefix("ch_sim_")
            return 200, stripe_fake.resource("charge", id=parts[1], customer=customer)
        return super()._route(method, path, query, form)

    def _pay(self, invoice_id: str, form: dict | None = None) -> tuple[int, dict]:
        form = form or {}
        state = self.states.get(invoice_id)
        if state is None or form.get("paid_out_of_band") == "true":
            return super()._pay(invoice_id, form)
        now = self.now()
        if self.invoices[invoice_id]["status"] != "open":
            state.charge_times.append(now)  # an attempt to charge a customer who paid: Stripe refuses it
            state.stale_charges += 1
            return super()._pay(invoice_id, form)
        decline = state.charge(now)
        if decline:
            self.declines[invoice_id] = decline
        else:
            self.declines.pop(invoice_id, None)
        status, body = super()._pay(invoice_id, form)
        invoice = json.loads(json.dumps(self.invoices[invoice_id]))
        if status == 200:
            state.paid_at = now
            self.pending.append(("invoice.paid", invoice))
        elif status == 402:
            self.pending.append(("invoice.payment_failed", invoice))
            if decline.get("decline_code") == "authentication_required":
                self.pending.append(("invoice.payment_action_required", invoice))
        return status, body

    def customer_pays(self, invoice_id: str) -> bool:
        """The customer pays on the hosted invoice page (confirming with their bank if asked)."""
        with self.lock:
            if self.invoices[invoice_id]["status"] != "open":
                return False
            self.declines.pop(invoice_id, None)
            status, _ = super()._pay(invoice_id, {})
            if status == 200:
                self.states[invoice_id].paid_at = self.now()
                self.pending.append(("invoice.paid", json.loads(json.dumps(self.invoices[invoice_id]))))
            return status == 200

    def customer_adds_card(self, customer: Customer) -> None:
        """A new card through the card-update page: Stripe sends the SetupIntent and the attachment."""
        method = f"pm_sim_new_{customer.index}"
        with self.lock:
            self.states[customer.invoice_id].new_card_at = self.now()
            self.pending.append(
                (
                    "setup_intent.succeeded",
                    stripe_fake.resource(
                        "setup_intent",
                        id=f"seti_sim_{customer.index}",
                        customer=customer.stripe_id,
                        payment_method=method,
                        status="succeeded",
                    ),
                )
            )
            self.pending.append(
                (
                    "payment_method.attached",
                    stripe_fake.resource("payment_method", id=method, customer=customer.stripe_id),
                )
            )

    def take_pending(self) -> list[dict]:
        with self.lock:
            pending, self.pending = self.pending, []
        return [
            stripe_fake.event(kind, obj, event_id=f"evt_sim_{next(self._events)}", created=int(time.time()))
            for kind, obj in pending
        ]


@dataclasses.dataclass
class EngineRun:
    states: list[CustomerState]
    charges_seen: int
    runtime_seconds: float
    webhooks: int = 0
    worker_runs: int = 0
    engine_errors: int = 0  # cases a tick set aside, webhook events whose processing failed
    failed_jobs: int = 0  # RQ's failed-job registries (a job that raised, or one RQ lost track of)


def engine_run(
    book: list[Customer],
    *,
    seed: int,
    start: dt.datetime,
    until: dt.datetime,
    step: dt.timedelta,
    progress: bool = False,
) -> EngineRun:
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # A simulated book, not money: commits need not wait for the disk (this session only).
        cursor.execute("SET synchronous_commit TO off")
    states = {customer.invoice_id: CustomerState(customer=customer, seed=seed) for customer in book}
    by_email = {customer.email: states[customer.invoice_id] for customer in book}
    fake = SimulatedStripe(states)
    for customer in book:
        fake.customers[customer.stripe_id] = stripe_fake.resource("customer") | customer.stripe_customer()
    with (
        stripe_fake.FakeStripeServer(fake) as server,
        override_settings(
            STRIPE_API_KEY="sk_test_simulator",
            STRIPE_API_BASE=server.url,
            STRIPE_WEBHOOK_SECRET=stripe_fake.WEBHOOK_SECRET,
            EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
            ALLOWED_HOSTS=["testserver"],
            SECURE_SSL_REDIRECT=False,
        ),
        time_machine.travel(start, tick=False) as clock,
    ):
        runner = _Runner(fake=fake, by_email=by_email, clock=clock)
        runner.setup_policy()
        agenda: list = []
        order = itertools.count()
        for customer in book:
            runner.deliver(
                [
                    stripe_fake.event(
                        "customer.created",
                        fake.customers[customer.stripe_id],
                        event_id=f"evt_sim_customer_{customer.index}",
                    )
                ]
            )
            heapq.heappush(agenda, (customer.failed_at, next(order), "fail", customer))
            if customer.disputes_at:
                heapq.heappush(agenda, (customer.disputes_at, next(order), "dispute", customer))
        runner.work()
        next_tick = start
        while True:
            moment = min(next_tick, agenda[0][0]) if agenda else next_tick
            if moment > until:
                break
            clock.move_to(moment)
            if agenda and agenda[0][0] == moment:
                _, _, what, customer = heapq.heappop(agenda)
                runner.act(what, customer, states[customer.invoice_id])
            else:
                runner.tick(moment)
                next_tick = moment + step
                if progress and moment.hour == 0 and moment.minute < step.total_seconds() / 60:
                    elapsed = time.perf_counter() - started
                    print(f"simulated {moment:%Y-%m-%d}, {elapsed:.0f} s", file=sys.stderr, flush=True)
            for when, what, customer in runner.take_reactions():
                heapq.heappush(agenda, (max(when, moment), next(order), what, customer))
        runner.read_sms(states)
    return EngineRun(
        engine_errors=runner.errors(),
        failed_jobs=sum(queue.failed_job_registry.count for queue in runner.queues),
        states=list(states.values()),
        charges_seen=len(fake.pay_keys),
        runtime_seconds=round(time.perf_counter() - started, 1),
        webhooks=runner.webhooks,
        worker_runs=runner.worker_runs,
    )


class _Runner:
    def __init__(self, *, fake: SimulatedStripe, by_email: dict[str, CustomerState], clock) -> None:
        self.fake, self.by_email, self.clock = fake, by_email, clock
        self.client = Client()
        self.connection = django_rq.get_connection("default")
        self.queues = [django_rq.get_queue(name) for name in QUEUES]
        self.reactions: list[tuple[dt.datetime, str, Customer]] = []
        self.outbox_read = 0
        self.webhooks = 0
        self.worker_runs = 0
        self.last_sweep: dt.datetime | None = None
        self.last_predunning: dt.date | None = None
        self.tick_failures = 0
        mail.outbox = []

    @staticmethod
    def setup_policy() -> None:
        """The project's own default policy (`manage.py dunning_setup`)."""
        call_command("dunning_setup", verbosity=0)

    def act(self, what: str, customer: Customer, state: CustomerState) -> None:
        invoice_id = customer.invoice_id
        if what == "fail":
            self.fake.invoices[invoice_id] = stripe_fake.invoice(
                invoice_id,
                customer.stripe_id,
                amount=customer.amount,
                currency=customer.currency,
                created=int(customer.failed_at.timestamp()) - 3600,
                number=f"SIM-{customer.index:05d}",
            )
            decline = customer.first_decline()
            state.charge(customer.failed_at)  # Stripe's own attempt at the renewal
            fields = {key: value for key, value in decline.items() if key not in ("decline_code", "code")}
            self.fake.attempt_declined(invoice_id, decline_code=decline["decline_code"], **fields)
            invoice = self.fake.invoices[invoice_id]
            events = [("invoice.payment_failed", invoice)]
            if decline.get("decline_code") == "authentication_required":
                events.append(("invoice.payment_action_required", invoice))
            self.deliver(
                [
                    stripe_fake.event(kind, obj, event_id=f"evt_sim_fail_{customer.index}_{n}")
                    for n, (kind, obj) in enumerate(events)
                ]
            )
        elif what == "dispute":
            dispute = stripe_fake.resource(
                "dispute", id=f"dp_sim_{customer.index}", charge=f"ch_sim_{customer.index}", status="needs_response"
            )
            self.deliver(
                [stripe_fake.event("charge.dispute.created", dispute, event_id=f"evt_sim_dp_{customer.index}")]
            )
        elif not state.may_act(self.clock_now()):
            return
        elif what == "new_card":
            self.fake.customer_adds_card(customer)
        elif what == "pay":
            self.fake.customer_pays(invoice_id)
        self.work()

    def clock_now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(time.time(), dt.UTC)

    def tick(self, moment: dt.datetime) -> None:
        """What RQ's cron runs: the tick every minute, the sweeps every 5, pre-dunning daily at 07:00 UTC."""
        from dunning_site.collections import jobs as collections_jobs
        from dunning_site.notifications import jobs as notifications_jobs

        self.tick_failures += collections_jobs.tick()["failed"]
        if self.last_sweep is None or moment - self.last_sweep >= dt.timedelta(minutes=5):
            notifications_jobs.sweep()
            collections_jobs.service_hooks_sweep()
            self.last_sweep = moment
        if moment.hour >= 7 and self.last_predunning != moment.date():
            collections_jobs.predunning_run()
            self.last_predunning = moment.date()
        self.work()

    def deliver(self, events: list[dict]) -> None:
        for payload in events:
            body, header = stripe_fake.signed(payload)
            response = self.client.post(
                WEBHOOK_URL, body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
            )
            self.webhooks += 1
            if response.status_code != 200:
                raise RuntimeError(
                    f"The webhook refused {payload['type']}: {response.status_code} {response.content!r}"
                )

    def _has_work(self) -> bool:
        if any(queue.count for queue in self.queues):
            return True
        now = time.time()
        return any(self.connection.zcount(queue.scheduled_job_registry.key, 0, now) for queue in self.queues)

    def work(self) -> None:
        """Run the jobs until nothing is due, delivering between runs the webhooks Stripe sent."""
        for _ in range(50):
            events = self.fake.take_pending()
            if events:
                self.deliver(events)
            elif not self._has_work():
                break
            if self._has_work():
                worker = django_rq.get_worker(*QUEUES, worker_class=SimulatorWorker)
                worker.work(burst=True, with_scheduler=True)
                self.worker_runs += 1
        self.read_outbox()

    def read_outbox(self) -> None:
        """The customers read what was sent to them (at the moment the clock shows)."""
        sent = mail.outbox[self.outbox_read :]
        self.outbox_read = len(mail.outbox)
        now = self.clock_now()
        for email in sent:
            bodies = [email.body, *(content for content, _type in getattr(email, "alternatives", []))]
            for address in email.to:
                state = self.by_email.get(address)
                if state is None:
                    continue
                reaction = state.receive(now, channel="email", body="\n".join(bodies))
                if reaction:
                    self.reactions.append((reaction[1], reaction[0], state.customer))

    def take_reactions(self) -> list[tuple[dt.datetime, str, Customer]]:
        reactions, self.reactions = self.reactions, []
        return reactions

    def errors(self) -> int:
        """What went wrong inside the engine: a simulator's figures mean little if the engine stumbled."""
        from dunning_site.accounts.models import BillingEvent

        return self.tick_failures + BillingEvent.objects.filter(status="failed").count()

    def read_sms(self, states: dict[str, CustomerState]) -> None:
        """SMS leave through a transport, not the mailbox: the outbox rows say what was sent, and when."""
        from dunning_site.notifications.models import Message

        sent = Message.objects.filter(channel="sms", sent_at__isnull=False).select_related("customer")
        for message in sent:
            state = states.get(f"in_sim_{message.customer.external_id.removeprefix('cus_sim_')}")
            if state is not None:
                state.contacts.append((message.sent_at, "sms"))
