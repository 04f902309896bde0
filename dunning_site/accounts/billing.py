"""The billing gateway: Stripe through `stripe.StripeClient`, or a local sandbox when no key is set.

Everything the product asks of a billing system goes through `gateway()`, so the rest of the code
never knows which one it talks to. The sandbox is chosen only when STRIPE_API_KEY is empty and
PAYMENTS_SANDBOX is on (development, demos), and says so in its label: it never stands in for a
configured Stripe account. With neither, the gateway refuses everything (`NotConfiguredGateway`).
"""

import dataclasses
import enum
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

import stripe
from django.conf import settings

if TYPE_CHECKING:
    from dunning_site.accounts.models import Invoice

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ChargeOutcome:
    """What happened to one attempt to collect an invoice."""

    succeeded: bool
    reference: str = ""  # the payment intent or charge id
    decline_code: str = ""
    advice_code: str = ""
    network_decline_code: str = ""
    network_advice_code: str = ""  # Mastercard's merchant advice code (MAC), e.g. "03", "21"
    card_brand: str = ""
    message: str = ""
    requires_action: bool = False
    # The billing system's invoice as the attempt left it (Stripe, with its payments): what a success
    # is recorded from, so the charge's own answer and a later re-read record it the same way, once.
    invoice: dict | None = dataclasses.field(default=None, compare=False, repr=False)


class BillingGateway(Protocol):
    label: str

    def invoice_fetch(self, invoice_id: str) -> dict: ...

    def invoice_pay(self, invoice_id: str, *, idempotency_key: str) -> ChargeOutcome: ...

    def charge_customer(self, charge_id: str) -> str: ...

    def invoice_mark_paid_out_of_band(self, invoice_id: str) -> str: ...

    def invoice_mark_uncollectible(self, invoice_id: str) -> str: ...

    def credit_note_create(self, *, invoice_id: str, amount: int, memo: str, idempotency_key: str) -> str: ...

    def payment_method_of_setup(self, setup_intent_id: str) -> str: ...

    def subscriptions_pause_collection(self, *, customer_id: str, paused: bool) -> list[str]: ...

    def payment_method_make_default(self, *, customer_id: str, payment_method_id: str) -> dict: ...

    def payment_method_fetch(self, payment_method_id: str) -> dict: ...

    def customer_fetch(self, customer_id: str) -> dict: ...

    def last_decline(self, invoice_id: str) -> ChargeOutcome | None: ...

    def customers(self, *, starting_after: str | None = None) -> Iterator[dict]: ...

    def open_invoices(self, *, starting_after: str | None = None) -> Iterator[dict]: ...

    def card_update_url(self, *, customer_id: str, return_url: str, currency: str = "") -> str: ...


# The Checkout setup session's currency for a customer with no invoice at all.
DEFAULT_SETUP_CURRENCY = "usd"


class StripeGateway:
    label = "Stripe"

    def __init__(self, api_key: str, *, api_base: str = "") -> None:
        # A request gets STRIPE_TIMEOUT_SECONDS for its answer (stripe-python's own default is 80 s), and
        # stripe-python asks twice more, with the same idempotency key, when none comes.
        http_client = stripe.new_default_http_client(timeout=settings.STRIPE_TIMEOUT_SECONDS)
        options = {"max_network_retries": 2, "http_client": http_client}
        if api_base:  # a local fake in tests and demos: never the network
            options["base_addresses"] = {"api": api_base}
        self.client = stripe.StripeClient(api_key, **options)

    def invoice_fetch(self, invoice_id: str) -> dict:
        """The invoice with its payments (Stripe leaves them out unless asked), so a payment Stripe
        collected can be recorded under its own id."""
        return self.client.v1.invoices.retrieve(invoice_id, {"expand": ["payments"]}).to_dict()

    def invoice_pay(self, invoice_id: str, *, idempotency_key: str) -> ChargeOutcome:
        """Attempt the invoice with the customer's default payment method.

        The idempotency key makes a repeated call return the first call's answer instead of charging
        again: Stripe keeps it for 24 hours, whatever it was — a 500 included — so the caller keeps a key
        only while it does not know the outcome. A decline is an outcome; an error answer (stripe.APIError,
        RateLimitError…) and no answer at all (stripe.APIConnectionError: a timeout, a lost connection)
        are raised for the caller to tell apart. The parameters never vary, or Stripe would refuse the key.
        """
        try:
            invoice = self.client.v1.invoices.pay(
                invoice_id, {"expand": ["payments"]}, options={"idempotency_key": idempotency_key}
            )
        except stripe.CardError as error:
            # Stripe's answer names the failed charge (and gives the PaymentIntent): the same reference
            # the webhook about this attempt reads from the invoice, so the decline is recorded once.
            details = _as_dict(error.error)
            reference = _charge_of(details) or self._attempt_reference(invoice_id, _intent_of(details))
            return _outcome_of_error(details, message=error.user_message or str(error), reference=reference)
        except stripe.InvalidRequestError as error:
            # e.g. "Invoice is already paid": nothing was charged; the caller re-reads the invoice.
            return ChargeOutcome(succeeded=False, decline_code=error.code or "invalid_request", message=str(error))
        data = invoice.to_dict()
        paid = [payment["id"] for payment in invoice_card_payments(data)]
        return ChargeOutcome(
            succeeded=invoice.status == "paid", reference=paid[-1] if paid else invoice.id, invoice=data
        )

    def charge_customer(self, charge_id: str) -> str:
        return self.client.v1.charges.retrieve(charge_id).to_dict().get("customer") or ""

    def invoice_mark_paid_out_of_band(self, invoice_id: str) -> str:
        try:
            invoice = self.client.v1.invoices.pay(invoice_id, {"paid_out_of_band": True})
        except stripe.InvalidRequestError as error:  # already paid or voided at Stripe: nothing to do
            return f"unchanged: {error.user_message or error}"
        return invoice.status

    def invoice_mark_uncollectible(self, invoice_id: str) -> str:
        """A write-off: Stripe stops its retries and reminders for the invoice (it can still be paid)."""
        try:
            invoice = self.client.v1.invoices.mark_uncollectible(invoice_id)
        except stripe.InvalidRequestError as error:  # paid, voided or already uncollectible: nothing to do
            return f"unchanged: {error.user_message or error}"
        return invoice.status

    def credit_note_create(self, *, invoice_id: str, amount: int, memo: str, idempotency_key: str) -> str:
        """A write-off of part of an open invoice: a credit note before payment lowers what Stripe
        charges and asks for (its amount_due). The key makes a retried job issue it once. Returns its id."""
        params = {"invoice": invoice_id, "amount": amount, "memo": memo[:500]}
        credit_note = self.client.v1.credit_notes.create(params, {"idempotency_key": idempotency_key})
        return credit_note.id

    def payment_method_of_setup(self, setup_intent_id: str) -> str:
        return self.client.v1.setup_intents.retrieve(setup_intent_id).to_dict().get("payment_method") or ""

    def subscriptions_pause_collection(self, *, customer_id: str, paused: bool) -> list[str]:
        """Pause (invoices are voided while suspended) or resume collection of the customer's live
        subscriptions; returns the ids changed."""
        changed = []
        for subscription in self.client.v1.subscriptions.list(
            {"customer": customer_id, "limit": 100}
        ).auto_paging_iter():
            if subscription.status in ("canceled", "incomplete_expired"):
                continue
            value = {"behavior": "void"} if paused else ""
            self.client.v1.subscriptions.update(subscription.id, {"pause_collection": value})
            changed.append(subscription.id)
        return changed

    def payment_method_make_default(self, *, customer_id: str, payment_method_id: str) -> dict:
        """Checkout in setup mode only attaches the card; invoices are charged to the default one."""
        self.client.v1.customers.update(
            customer_id, {"invoice_settings": {"default_payment_method": payment_method_id}}
        )
        return self.client.v1.payment_methods.retrieve(payment_method_id).to_dict()

    def payment_method_fetch(self, payment_method_id: str) -> dict:
        """A card's brand, expiry, country and billing address (a customer event names it only)."""
        return self.client.v1.payment_methods.retrieve(payment_method_id).to_dict()

    def customer_fetch(self, customer_id: str) -> dict:
        """The customer as Stripe has them now, with the default card in full. Raises LookupError when
        Stripe has no such customer (deleted)."""
        try:
            customer = self.client.v1.customers.retrieve(
                customer_id, {"expand": ["invoice_settings.default_payment_method"]}
            )
        except stripe.InvalidRequestError as error:
            if error.http_status == 404:
                raise LookupError(str(error)) from error
            raise
        return customer.to_dict()

    def last_decline(self, invoice_id: str) -> ChargeOutcome | None:
        """The decline behind an invoice's latest failed attempt (the invoice itself does not say),
        read from its PaymentIntent: `last_payment_error` for the codes and, for the reference, the
        failed charge it names — the one the engine's own attempt was answered with, so an echo of it
        is recognised. A payment waiting for the customer's authentication (`requires_action`) is one
        too, with or without an error.

        An attempt that failed before any charge (Stripe's own 3-D Secure) names none; the intent's
        `latest_charge` is then an earlier attempt's, and would pass this one off as recorded: the
        intent and the invoice's attempt count stand for it instead."""
        payments = self.client.v1.invoice_payments.list({"invoice": invoice_id, "limit": 1})
        for payment in payments.data:
            intent_id = (payment.to_dict().get("payment") or {}).get("payment_intent")
            if not intent_id:
                continue
            intent = self.client.v1.payment_intents.retrieve(intent_id).to_dict()
            error = dict(intent.get("last_payment_error") or {})
            if not error and intent.get("status") == "requires_action":
                error = {"code": "authentication_required", "decline_code": "authentication_required"}
                error["message"] = "The customer's bank asks them to confirm the payment."
            if not error:
                continue
            reference = _charge_of(error) or self._attempt_reference(invoice_id, intent_id)
            return _outcome_of_error(error, message=error.get("message") or "", reference=reference)
        return None

    def _attempt_reference(self, invoice_id: str, intent_id: str) -> str:
        """When no charge is named: the PaymentIntent and the invoice's attempt count, which the
        engine's answer and the webhooks about the same attempt share."""
        if not intent_id:
            return ""
        try:
            attempt = self.client.v1.invoices.retrieve(invoice_id).to_dict().get("attempt_count") or 0
        except stripe.StripeError:
            attempt = 0
        return attempt_reference(intent_id=intent_id, attempt=attempt)

    def customers(self, *, starting_after: str | None = None) -> Iterator[dict]:
        # With the default card in full: its expiry and country are learned without a request each.
        params: dict = {"limit": 100, "expand": ["data.invoice_settings.default_payment_method"]}
        if starting_after:
            params["starting_after"] = starting_after
        for customer in self.client.v1.customers.list(params).auto_paging_iter():
            yield customer.to_dict()

    def open_invoices(self, *, starting_after: str | None = None) -> Iterator[dict]:
        params: dict = {"status": "open", "limit": 100}
        if starting_after:
            params["starting_after"] = starting_after
        for invoice in self.client.v1.invoices.list(params).auto_paging_iter():
            yield invoice.to_dict()

    def card_update_url(self, *, customer_id: str, return_url: str, currency: str = "") -> str:
        """A setup-mode Checkout session in the currency the card will be charged in (the customer's
        open invoices'), so Checkout offers what works for it; Stripe wants it lower-case."""
        session = self.client.v1.checkout.sessions.create(
            {
                "mode": "setup",
                "customer": customer_id,
                "currency": (currency or DEFAULT_SETUP_CURRENCY).lower(),
                "payment_method_types": ["card"],
                "success_url": return_url + "?updated=1",
                "cancel_url": return_url,
            }
        )
        return session.url


def invoice_card_payments(invoice: dict) -> list[dict]:
    """The card payments Stripe collected for an invoice (its paid InvoicePayments of a PaymentIntent or
    a charge; an out-of-band payment is not one), from an invoice read with its payments expanded."""
    payments = (invoice.get("payments") or {}).get("data") or []
    return [
        payment
        for payment in payments
        if payment.get("status") == "paid"
        and (payment.get("payment") or {}).get("type") in ("payment_intent", "charge")
    ]


def attempt_reference(*, intent_id: str, attempt: int) -> str:
    """The reference of a failed attempt no charge id names: its PaymentIntent and the attempt's number.
    An invoice keeps one PaymentIntent through all its attempts, so the intent's id alone would make
    every later decline look like one already recorded."""
    return f"{intent_id}:attempt-{attempt}"


def _as_dict(error) -> dict:
    return error.to_dict() if hasattr(error, "to_dict") else dict(error or {})


def _charge_of(error: dict) -> str:
    """The failed charge's id: one per attempt, named alike by a CardError and by `last_payment_error`."""
    charge = error.get("charge") or ""
    return charge.get("id", "") if isinstance(charge, dict) else str(charge)


def _intent_of(error: dict) -> str:
    intent = error.get("payment_intent") or ""
    return intent.get("id", "") if isinstance(intent, dict) else str(intent)


def _outcome_of_error(error, *, message: str, reference: str = "") -> ChargeOutcome:
    """A ChargeOutcome from Stripe's error object (a CardError's `error`, or `last_payment_error`,
    which names the failed charge but never the PaymentIntent). `reference` is the attempt's
    identity as the caller found it (see StripeGateway.last_decline)."""
    error = _as_dict(error)
    card = (error.get("payment_method") or {}).get("card") or {}
    decline_code = error.get("decline_code") or error.get("code") or ""
    return ChargeOutcome(
        succeeded=False,
        reference=reference or _charge_of(error),
        decline_code=decline_code,
        advice_code=error.get("advice_code") or "",
        network_decline_code=error.get("network_decline_code") or "",
        network_advice_code=error.get("network_advice_code") or "",
        card_brand=card.get("brand", ""),
        message=message,
        requires_action=decline_code == "authentication_required" or error.get("code") == "authentication_required",
    )


class SandboxGateway:
    """A clearly labelled stand-in when no Stripe key is configured, so `make run` can show retries.

    It decides by the customer's payment method, named like Stripe's test payment methods:
    pm_card_visa succeeds; pm_card_chargeDeclinedInsufficientFunds, …StolenCard, …ExpiredCard,
    pm_card_authenticationRequired and pm_card_chargeDeclined decline with Stripe's codes.
    """

    label = "Sandbox — simulated payments (no Stripe key configured)"

    DECLINES = {
        "pm_card_chargeDeclinedInsufficientFunds": ("insufficient_funds", ""),
        "pm_card_chargeDeclinedStolenCard": ("stolen_card", "do_not_try_again"),
        "pm_card_chargeDeclinedLostCard": ("lost_card", "do_not_try_again"),
        "pm_card_chargeDeclinedExpiredCard": ("expired_card", "confirm_card_data"),
        "pm_card_chargeDeclinedProcessingError": ("processing_error", "try_again_later"),
        "pm_card_authenticationRequired": ("authentication_required", ""),
        "pm_card_chargeDeclined": ("generic_decline", ""),
    }

    def __init__(self, payment_method_of=None) -> None:
        self.payment_method_of = payment_method_of

    def invoice_fetch(self, invoice_id: str) -> dict:
        raise LookupError("The sandbox keeps no invoices of its own; the back-office's copy is the truth.")

    def invoice_pay(self, invoice_id: str, *, idempotency_key: str) -> ChargeOutcome:
        method = self.payment_method_of(invoice_id) if self.payment_method_of else "pm_card_visa"
        if method in self.DECLINES:
            decline_code, advice_code = self.DECLINES[method]
            return ChargeOutcome(
                succeeded=False,
                reference=f"sandbox_{idempotency_key}",
                decline_code=decline_code,
                advice_code=advice_code,
                card_brand="visa",
                message=f"Sandbox: declined ({decline_code})",
                requires_action=decline_code == "authentication_required",
            )
        if not method:
            return ChargeOutcome(succeeded=False, decline_code="no_payment_method", message="Sandbox: no card on file")
        return ChargeOutcome(succeeded=True, reference=f"sandbox_{idempotency_key}")

    def last_decline(self, invoice_id: str) -> ChargeOutcome | None:
        return None

    def charge_customer(self, charge_id: str) -> str:
        raise LookupError("The sandbox has no charges.")

    def invoice_mark_paid_out_of_band(self, invoice_id: str) -> str:
        return "sandbox"

    def invoice_mark_uncollectible(self, invoice_id: str) -> str:
        return "sandbox"

    def credit_note_create(self, *, invoice_id: str, amount: int, memo: str, idempotency_key: str) -> str:
        return ""

    def payment_method_of_setup(self, setup_intent_id: str) -> str:
        return ""

    def subscriptions_pause_collection(self, *, customer_id: str, paused: bool) -> list[str]:
        return []

    def payment_method_make_default(self, *, customer_id: str, payment_method_id: str) -> dict:
        return {}

    def payment_method_fetch(self, payment_method_id: str) -> dict:
        return {}

    def customer_fetch(self, customer_id: str) -> dict:
        raise LookupError("The sandbox keeps no customers of its own.")

    def customers(self, *, starting_after: str | None = None) -> Iterator[dict]:
        return iter(())

    def open_invoices(self, *, starting_after: str | None = None) -> Iterator[dict]:
        return iter(())

    def card_update_url(self, *, customer_id: str, return_url: str, currency: str = "") -> str:
        return return_url + "?sandbox=1"


PAYMENTS_NOT_CONFIGURED = (
    "Payments are not configured (no STRIPE_API_KEY, and the sandbox is off): nothing was charged. "
    "Set STRIPE_API_KEY, or PAYMENTS_SANDBOX=true on a demo server."
)


class PaymentsNotConfigured(stripe.APIConnectionError):
    """There is no billing system to talk to.

    An APIConnectionError on purpose: as when Stripe is out of reach, nothing was charged and nothing
    was learnt, so a payment retry is put back on the schedule without spending the invoice's budget,
    and retries go on by themselves once a key is configured.
    """


class NotConfiguredGateway:
    """Neither Stripe nor the sandbox: every request is refused, so no charge can be simulated or made."""

    label = "Not configured"

    def _refuse(self, *args, **kwargs):
        raise PaymentsNotConfigured(PAYMENTS_NOT_CONFIGURED)

    invoice_fetch = invoice_pay = charge_customer = invoice_mark_paid_out_of_band = _refuse
    invoice_mark_uncollectible = payment_method_of_setup = subscriptions_pause_collection = _refuse
    credit_note_create = _refuse
    payment_method_make_default = payment_method_fetch = customer_fetch = last_decline = _refuse
    customers = open_invoices = card_update_url = _refuse


class PaymentsMode(enum.Enum):
    """Which of the three holds, as every staff page says: "Payments: Stripe", "…: sandbox", "…: not configured"."""

    STRIPE = "Stripe"
    SANDBOX = "sandbox"
    NOT_CONFIGURED = "not configured"


def payments_mode() -> PaymentsMode:
    """Decided by configuration alone, never by a request: with a key the sandbox does not exist, and
    without one it exists only in development or when PAYMENTS_SANDBOX asks for it by name."""
    if settings.STRIPE_API_KEY:
        return PaymentsMode.STRIPE
    if settings.PAYMENTS_SANDBOX:
        return PaymentsMode.SANDBOX
    return PaymentsMode.NOT_CONFIGURED


def invoice_collected_by_stripe(invoice: "Invoice") -> bool:
    """Stripe holds this invoice and charges it by itself until it is told it was paid: what is paid
    here by other means must reach Stripe (the sandbox and a book without Stripe keep no invoices)."""
    return bool(invoice.external_id) and payments_mode() is PaymentsMode.STRIPE


def gateway() -> BillingGateway:
    mode = payments_mode()
    if mode is PaymentsMode.STRIPE:
        return StripeGateway(settings.STRIPE_API_KEY, api_base=settings.STRIPE_API_BASE)
    if mode is PaymentsMode.NOT_CONFIGURED:
        return NotConfiguredGateway()
    from dunning_site.accounts.models import Invoice

    def payment_method_of(invoice_id: str) -> str:
        invoice = Invoice.objects.select_related("customer").filter(external_id=invoice_id).first()
        invoice = invoice or Invoice.objects.select_related("customer").filter(number=invoice_id).first()
        return invoice.customer.default_payment_method if invoice else ""

    return SandboxGateway(payment_method_of)
