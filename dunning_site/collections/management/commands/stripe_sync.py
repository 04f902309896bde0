"""Backfill and sync from Stripe: every customer, then every open invoice, then cases for what is overdue.

Webhooks keep the book current; this command fills it the first time and repairs it after an
outage (a lost event, a webhook endpoint that was down). Each object is stored in its own
transaction through the same services the webhooks use, so running it twice changes nothing.

It is resumable: after each stored object the run's position (the last Stripe id of each object
type) is written to a checkpoint, and `--resume` continues with `starting_after` from there
instead of listing everything again. The checkpoint lives in Redis (`CHECKPOINT_KEY`):
- the cache is no place for it: with the default locmem backend it dies with the process, which
  is exactly when it is needed;
- a file next to MEDIA_ROOT lives on one machine's disk, so a resume from another container or
  host would not find it, and that directory may be read-only or object storage in production;
- Redis is always there (RQ needs it; `make run` embeds one) and every host sees the same one.
Redis is run without persistence here, so a Redis restart forgets the checkpoint: `--resume`
then starts from the beginning, which is slower but just as correct. A complete run deletes it.

Stripe lists newest first, so objects created after a run started are not on its later pages;
their webhooks bring them (and the next full run would).
"""

import dataclasses
import json
from collections.abc import Callable, Iterator

import django_rq
import stripe
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from dunning_site.accounts.billing import BillingGateway, gateway
from dunning_site.accounts.models import Customer, Invoice
from dunning_site.accounts.services import customer_upsert_from_billing, invoice_upsert_from_billing
from dunning_site.collections.ladder import cases_open_overdue
from dunning_site.collections.stripe_invoices import customer_for_invoice

CHECKPOINT_KEY = "dunning:stripe_sync:checkpoint"
PROGRESS_EVERY = 100
CUSTOMERS, INVOICES = "customers", "invoices"

NO_KEY = "stripe_sync needs STRIPE_API_KEY; the sandbox has nothing to sync."
RESUME_IS_WHOLE = (
    "--resume continues the interrupted run with the object types it was started with; "
    "leave out --customers-only and --invoices-only."
)
ONLY_ONE = "--customers-only and --invoices-only exclude each other; leave both out to sync both."
STOPPED = (
    "Stripe sync stopped while listing %(phase)s (%(position)s): %(error)s\n"
    "Everything listed before that is stored. Run `manage.py stripe_sync --resume` to continue from there."
)
NO_REDIS = "stripe_sync keeps its checkpoint in Redis (REDIS_URL), which did not answer: %(error)s"


@dataclasses.dataclass
class Tally:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    ignored: int = 0  # drafts: not owed yet, the book does not keep them
    failed: list[str] = dataclasses.field(default_factory=list)

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged + self.ignored + len(self.failed)

    def __str__(self) -> str:
        text = f"{self.total} synced: {self.created} created, {self.updated} updated, {self.unchanged} unchanged"
        if self.ignored:
            text += f", {self.ignored} ignored (drafts)"
        if self.failed:
            text += f", {len(self.failed)} failed ({', '.join(self.failed)})"
        return text


class Command(BaseCommand):
    help = (
        "Pull every Stripe customer and open invoice into the book (idempotent; `--resume` continues "
        "an interrupted run), then open cases for what is overdue."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--resume", action="store_true", help="Continue the interrupted run from its checkpoint.")
        parser.add_argument("--customers-only", action="store_true", help="Sync customers, not invoices.")
        parser.add_argument("--invoices-only", action="store_true", help="Sync open invoices, not customers.")

    def handle(self, *args, resume: bool, customers_only: bool, invoices_only: bool, **options) -> None:
        if not settings.STRIPE_API_KEY:
            raise CommandError(NO_KEY)
        if customers_only and invoices_only:
            raise CommandError(ONLY_ONE)
        if resume and (customers_only or invoices_only):
            raise CommandError(RESUME_IS_WHOLE)
        phases = [CUSTOMERS] if customers_only else [INVOICES] if invoices_only else [CUSTOMERS, INVOICES]
        try:
            self._run(phases, resume=resume, redis=django_rq.get_connection())
        except RedisError as error:
            raise CommandError(NO_REDIS % {"error": error}) from error
        opened = cases_open_overdue()
        self.stdout.write(f"Opened {opened} case{'' if opened == 1 else 's'} for overdue invoices.")

    def _run(self, phases: list[str], *, resume: bool, redis) -> None:
        previous = _checkpoint_load(redis)
        if resume and previous is not None:
            state = previous
            done = ", ".join(state["done"]) or "nothing"
            positions = ", ".join(
                f"{phase} after {last}" for phase, last in state["last_id"].items() if phase not in state["done"]
            )
            self.stdout.write(
                f"Resuming the run started at {state['started_at']} "
                f"(done: {done}; continuing {positions or 'from the start'})."
            )
        else:
            if resume:
                self.stdout.write("No interrupted run to resume: syncing from the beginning.")
            elif previous is not None:
                self.stdout.write(
                    f"Starting over: the checkpoint of the run started at {previous['started_at']} is discarded "
                    "(`--resume` would have continued it)."
                )
            state = {"started_at": timezone.now().isoformat(), "phases": phases, "done": [], "last_id": {}}
            _checkpoint_save(redis, state)

        billing = gateway()
        for phase in state["phases"]:
            if phase in state["done"]:
                self.stdout.write(f"{phase.capitalize()}: already synced before the interruption.")
                continue
            tally = self._sync(phase, billing=billing, state=state, redis=redis)
            state["done"].append(phase)
            _checkpoint_save(redis, state)
            self.stdout.write(f"{phase.capitalize()}: {tally}.")
        redis.delete(CHECKPOINT_KEY)

    def _sync(self, phase: str, *, billing: BillingGateway, state: dict, redis) -> Tally:
        """Store every object of one type, moving the checkpoint after each one."""
        listing: Iterator[dict]
        store: Callable[[dict], str]
        if phase == CUSTOMERS:
            listing, store = billing.customers(starting_after=state["last_id"].get(phase)), _customer_store
        else:
            listing, store = billing.open_invoices(starting_after=state["last_id"].get(phase)), _invoice_store
        tally = Tally()
        try:
            for data in listing:
                try:
                    outcome = store(data)
                except (ValidationError, IntegrityError) as error:
                    # One object the book cannot take (say an invoice number already used by an
                    # import) must not hold up the rest: name it, count it, carry on.
                    self.stderr.write(f"Could not store {data['id']}: {_reason(error)}")
                    tally.failed.append(data["id"])
                else:
                    setattr(tally, outcome, getattr(tally, outcome) + 1)
                state["last_id"][phase] = data["id"]
                _checkpoint_save(redis, state)
                if tally.total % PROGRESS_EVERY == 0:
                    self.stdout.write(f"  {phase}: {tally.total} so far (last {data['id']})")
        except (stripe.StripeError, KeyboardInterrupt) as error:
            last = state["last_id"].get(phase)
            position = f"after {last}" if last else "at the first page"
            reason = str(error) if isinstance(error, stripe.StripeError) else "interrupted"
            raise CommandError(STOPPED % {"phase": phase, "position": position, "error": reason}) from error
        return tally


def _customer_store(data: dict) -> str:
    before = _snapshot(Customer, data["id"])
    customer = customer_upsert_from_billing(data=data)
    return _outcome(before, customer)


def _invoice_store(data: dict) -> str:
    before = _snapshot(Invoice, data["id"])
    with transaction.atomic():
        invoice = invoice_upsert_from_billing(data=data, customer=customer_for_invoice(data))
    if invoice is None:
        return "ignored"
    return _outcome(before, invoice)


# What a sync may change: every stored field except the row's own bookkeeping.
def _compared_fields(model: type[models.Model]) -> list[str]:
    skipped = {"id", "created_at", "updated_at"}
    return [field.attname for field in model._meta.concrete_fields if field.name not in skipped]


def _snapshot(model: type[models.Model], external_id: str) -> dict | None:
    return model.objects.filter(external_id=external_id).values(*_compared_fields(model)).first()


def _outcome(before: dict | None, after: models.Model) -> str:
    if before is None:
        return "created"
    changed = any(getattr(after, name) != value for name, value in before.items())
    return "updated" if changed else "unchanged"


def _reason(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(error.messages)
    return str(error).splitlines()[0]


def _checkpoint_load(redis) -> dict | None:
    raw = redis.get(CHECKPOINT_KEY)
    return json.loads(raw) if raw else None


def _checkpoint_save(redis, state: dict) -> None:
    redis.set(CHECKPOINT_KEY, json.dumps(state))
