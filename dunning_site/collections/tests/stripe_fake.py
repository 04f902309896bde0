"""A local fake of the Stripe API for tests: real HTTP on 127.0.0.1, real stripe-python on the
other side (through STRIPE_API_BASE), and objects built from Stripe's own published examples
(../shared/stripe/fixtures3.json) with only the fields a test is about changed.
"""

import copy
import dataclasses
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import stripe

FIXTURES = Path(__file__).resolve().parent / "stripe" / "fixtures3-subset.json"
WEBHOOK_SECRET = "whsec_test_secret_for_the_fake"
# Stripe keeps the response of an idempotency key, whatever it was (500s included), this long.
IDEMPOTENCY_WINDOW_SECONDS = 24 * 3600
_resources: dict | None = None


def resource(name: str, **changes) -> dict:
    """A copy of Stripe's example object `name` with `changes` applied (top-level keys)."""
    global _resources
    if _resources is None:
        _resources = json.loads(FIXTURES.read_text())["resources"]
    obj = copy.deepcopy(_resources[name])
    obj.update(changes)
    return obj


def invoice(invoice_id: str, customer: str, *, amount: int, currency: str = "eur", status: str = "open", **changes):
    created = changes.pop("created", int(time.time()) - 86400)
    paid = amount if status == "paid" else 0
    return resource(
        "invoice",
        id=invoice_id,
        customer=customer,
        number=changes.pop("number", f"NUM-{invoice_id}"),
        currency=currency,
        status=status,
        total=amount,
        amount_due=amount,
        amount_paid=paid,
        amount_remaining=amount - paid,
        created=created,
        due_date=changes.pop("due_date", None),
        status_transitions={
            "finalized_at": created,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        hosted_invoice_url=f"https://invoice.stripe.com/i/{invoice_id}",
        **changes,
    )


def event(event_type: str, obj: dict, *, event_id: str, created: int | None = None) -> dict:
    return resource(
        "event",
        id=event_id,
        type=event_type,
        data={"object": obj},
        created=created or int(time.time()),
        api_version=None,
    )


def signed(payload: dict | str, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> tuple[str, str]:
    body = payload if isinstance(payload, str) else json.dumps(payload)
    header = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=timestamp or int(time.time()))
    return body, header


@dataclasses.dataclass
class PayFault:
    """What goes wrong with one request to pay an invoice (each request, replays included, takes the next)."""

    status: int = 0  # answer this HTTP error (500 api_error, 429 rate_limit_error) instead of paying
    charge_first: bool = False  # the card is charged before the error answer is given (500: an outcome unknown)
    stall_seconds: float = 0  # say nothing this long after doing the work: the client times out


@dataclasses.dataclass
class Answer:
    status: int
    body: dict
    stall_seconds: float = 0
    replayed: bool = False


@dataclasses.dataclass
class Stored:
    """The response Stripe keeps for an idempotency key, with the request it answered."""

    method: str
    path: str
    params: dict
    status: int
    body: str
    at: float


ERROR_TYPES = {429: "rate_limit_error", 500: "api_error", 502: "api_error", 503: "api_error"}


class FakeStripe:
    """State the tests arrange: invoices, customers, and how each invoice's next payment ends.

    Idempotency behaves as Stripe's: the response to a POST with an Idempotency-Key is kept for 24 hours
    and replayed, 500s included, to any request with that key; the key reused with other parameters or
    on another path is a 400 idempotency_error. A 429 is not kept (the request never ran).
    """

    def __init__(self) -> None:
        self.invoices: dict[str, dict] = {}
        self.customers: dict[str, dict] = {}
        self.subscriptions: dict[str, dict] = {}
        self.credit_notes: dict[str, dict] = {}  # credit note id → the credit note, as Stripe issued it
        self.payment_methods: dict[str, dict] = {}  # what GET /v1/payment_methods/<id> answers (else an example)
        self.declines: dict[str, dict] = {}  # invoice id → Stripe error object for its next /pay
        self.last_errors: dict[str, dict] = {}  # invoice id → last_payment_error of its latest attempt
        # invoice id → its PaymentIntent's latest_charge (the failed charge of its latest attempt).
        self.latest_charges: dict[str, str] = {}
        self.charge_count = 0
        # (method, path, params): the query string's parameters for a GET, the form for a POST.
        self.requests: list[tuple[str, str, dict]] = []
        # List path → the page (1-based) that answers 500 until the test removes it, like an outage.
        self.broken_pages: dict[str, int] = {}
        self.idempotent: dict[str, Stored] = {}
        # Idempotency-Key of each POST /v1/invoices/<id>/pay, in order: (invoice id, key).
        self.pay_keys: list[tuple[str, str]] = []
        # Every card charge that went through: {"invoice", "amount", "payment"} (the InvoicePayment's id).
        self.charges: list[dict] = []
        self.invoice_payments: dict[str, list[dict]] = {}  # invoice id → its paid InvoicePayments
        self.pay_faults: dict[str, list[PayFault]] = {}  # invoice id → what goes wrong with its next /pay
        self.lock = threading.Lock()
        self.release = threading.Event()  # ends stalled answers when the server stops

    def attempt_declined(self, invoice_id: str, *, decline_code: str, charged: bool = True, **fields) -> str:
        """Stripe's own attempt at the invoice (its first charge, or one of its automatic retries)
        declined: a new failed charge on the invoice's PaymentIntent, named by the intent's
        `latest_charge` and `last_payment_error.charge`, and one more attempt counted on the invoice.
        Returns the charge's id. For an attempt that needs authentication, the intent waits in
        `requires_action`. `charged=False`: it failed before any charge (Stripe's own 3-D Secure),
        so no charge is named and `latest_charge` stays an earlier attempt's, as at Stripe."""
        charge_id = self._new_charge(invoice_id) if charged else ""
        error = {"type": "card_error", "code": "card_declined", "decline_code": decline_code}
        if charge_id:
            error["charge"] = charge_id
        if decline_code == "authentication_required":
            error["code"] = "authentication_required"
        self.last_errors[invoice_id] = error | fields
        invoice = self.invoices.get(invoice_id)
        if invoice is not None:
            invoice.update(attempted=True, attempt_count=(invoice.get("attempt_count") or 0) + 1)
        return charge_id

    def _new_charge(self, invoice_id: str) -> str:
        self.charge_count += 1
        charge_id = f"ch_{invoice_id}_{self.charge_count}"
        self.latest_charges[invoice_id] = charge_id
        return charge_id

    def payment_intent(self, invoice_id: str) -> dict:
        """The invoice's PaymentIntent as Stripe shows it after its latest attempt: `last_payment_error`
        names the failed charge but, unlike a CardError, carries no `payment_intent`."""
        error = self.last_errors.get(invoice_id)
        if error is not None:
            error = {key: value for key, value in error.items() if key != "payment_intent"}
        waiting = bool(error) and (error.get("code") == "authentication_required")
        invoice = self.invoices.get(invoice_id) or {}
        return resource(
            "payment_intent",
            id=f"pi_{invoice_id}",
            amount=invoice.get("amount_remaining", 0),
            currency=invoice.get("currency", "usd"),
            customer=invoice.get("customer"),
            status="requires_action" if waiting else "requires_payment_method",
            next_action={"type": "use_stripe_sdk"} if waiting else None,
            last_payment_error=error,
            latest_charge=self.latest_charges.get(invoice_id),
        )

    def fail_pay(self, invoice_id: str, *faults: PayFault) -> None:
        """Queue what goes wrong with the next requests to pay `invoice_id`, one fault per request."""
        self.pay_faults.setdefault(invoice_id, []).extend(faults)

    def handle(self, method: str, path: str, query: dict, form: dict, headers) -> Answer:
        params = {name: values[0] for name, values in query.items()} | form
        self.requests.append((method, path, params))
        fault = PayFault()
        parts = path.strip("/").split("/")
        key = headers.get("Idempotency-Key")
        if method == "POST" and len(parts) == 4 and parts[1] == "invoices" and parts[3] == "pay":
            self.pay_keys.append((parts[2], key or ""))
            queued = self.pay_faults.get(parts[2])
            fault = queued.pop(0) if queued else fault
        if method == "POST" and key:
            stored = self.idempotent.get(key)
            if stored is not None and time.time() - stored.at > IDEMPOTENCY_WINDOW_SECONDS:
                stored = None
            if stored is not None:
                if (stored.method, stored.path, stored.params) != (method, path, params):
                    message = (
                        "Keys for idempotent requests can only be used with the same parameters they were first "
                        f"used with. Try using a key other than '{key}' if you meant to execute a different request."
                    )
                    return Answer(400, {"error": {"type": "idempotency_error", "message": message}})
                return Answer(stored.status, json.loads(stored.body), fault.stall_seconds, replayed=True)
        if fault.status and not fault.charge_first:
            status, body = fault.status, self._error_body(fault.status)
        else:
            status, body = self._route(method, path, query, form)
            if fault.status:
                status, body = fault.status, self._error_body(fault.status)
        body = json.loads(json.dumps(body))  # as sent: later changes to the fake's objects do not show
        if method == "POST" and key and status != 429:
            self.idempotent[key] = Stored(method, path, params, status, json.dumps(body), time.time())
        return Answer(status, body, fault.stall_seconds)

    @staticmethod
    def _error_body(status: int) -> dict:
        kind = ERROR_TYPES.get(status, "api_error")
        return {"error": {"type": kind, "message": f"The fake answers {status} ({kind}) as asked."}}

    def _with_payments(self, obj: dict, params: dict) -> dict:
        """An invoice with its `payments` when the request expands them (Stripe leaves them out otherwise)."""
        if "payments" not in {value for name, value in params.items() if name.startswith("expand[")}:
            return obj
        payments = self.invoice_payments.get(obj["id"], [])
        url = f"/v1/invoice_payments?invoice={obj['id']}"
        return obj | {"payments": {"object": "list", "url": url, "has_more": False, "data": payments}}

    def _with_default_card(self, customer: dict) -> dict:
        """A customer with its default payment method expanded, as `expand[]=…default_payment_method` asks."""
        default = (customer.get("invoice_settings") or {}).get("default_payment_method")
        if not isinstance(default, str) or default not in self.payment_methods:
            return customer
        settings = customer["invoice_settings"] | {"default_payment_method": self.payment_methods[default]}
        return customer | {"invoice_settings": settings}

    def _route(self, method: str, path: str, query: dict, form: dict) -> tuple[int, dict]:
        parts = path.strip("/").split("/")[1:]  # drop "v1"
        if parts == ["invoices"]:
            status = query.get("status", [None])[0]
            items = [obj for obj in self.invoices.values() if not status or obj["status"] == status]
            return self._page(items, query, "/v1/invoices", every=list(self.invoices.values()))
        if parts == ["customers"]:
            status, body = self._page(list(self.customers.values()), query, "/v1/customers")
            if status == 200 and "data.invoice_settings.default_payment_method" in query.get("expand[0]", []):
                body["data"] = [self._with_default_card(customer) for customer in body["data"]]
            return status, body
        if len(parts) == 2 and parts[0] == "customers" and method == "GET":
            if parts[1] not in self.customers:
                message = f"No such customer: '{parts[1]}'"
                return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing", "message": message}}
            customer = self.customers[parts[1]]
            expand = {value for name, values in query.items() if name.startswith("expand[") for value in values}
            wanted = "invoice_settings.default_payment_method" in expand
            return 200, self._with_default_card(customer) if wanted else customer
        if len(parts) == 2 and parts[0] == "invoices" and parts[1] in self.invoices:
            return 200, self._with_payments(self.invoices[parts[1]], {k: v[0] for k, v in query.items()})
        if len(parts) == 3 and parts[0] == "invoices" and parts[2] == "pay" and method == "POST":
            status, body = self._pay(parts[1], form)
            return status, self._with_payments(body, form) if status == 200 else body
        if len(parts) == 3 and parts[0] == "invoices" and parts[2] == "mark_uncollectible" and method == "POST":
            return self._mark_uncollectible(parts[1])
        if parts == ["credit_notes"] and method == "POST":
            return self._credit_note(form)
        if parts == ["invoice_payments"]:
            invoice_id = query.get("invoice", [""])[0]
            items = []
            if invoice_id in self.last_errors:
                items.append(
                    resource(
                        "invoice_payment",
                        id=f"inpay_{invoice_id}",
                        invoice=invoice_id,
                        payment={"type": "payment_intent", "payment_intent": f"pi_{invoice_id}"},
                    )
                )
            return self._page(items, query, "/v1/invoice_payments")
        if len(parts) == 2 and parts[0] == "payment_intents":
            return 200, self.payment_intent(parts[1].removeprefix("pi_"))
        if len(parts) == 2 and parts[0] == "customers" and method == "POST":
            customer = self.customers.setdefault(parts[1], resource("customer", id=parts[1]))
            default = form.get("invoice_settings[default_payment_method]")
            if default:
                customer["invoice_settings"] = {
                    **customer.get("invoice_settings", {}),
                    "default_payment_method": default,
                }
            return 200, customer
        if parts == ["subscriptions"]:
            customer = query.get("customer", [""])[0]
            items = [sub for sub in self.subscriptions.values() if sub["customer"] == customer]
            return self._page(items, query, "/v1/subscriptions")
        if len(parts) == 2 and parts[0] == "subscriptions" and method == "POST":
            subscription = self.subscriptions[parts[1]]
            behavior = form.get("pause_collection[behavior]")
            subscription["pause_collection"] = {"behavior": behavior} if behavior else None
            return 200, subscription
        if len(parts) == 2 and parts[0] == "payment_methods":
            return 200, self.payment_methods.get(parts[1]) or resource("payment_method", id=parts[1], customer=None)
        if len(parts) == 2 and parts[0] == "setup_intents":
            return 200, resource("setup_intent", id=parts[1], status="succeeded", payment_method=f"pm_from_{parts[1]}")
        if parts == ["checkout", "sessions"] and method == "POST":
            # A new session each call, like Stripe; the test reads what was asked from `requests`.
            session_id = f"cs_test_fake{len(self.requests)}"
            if form.get("customer") and form["customer"] not in self.customers:
                message = f"No such customer: '{form['customer']}'"
                return 400, {"error": {"type": "invalid_request_error", "param": "customer", "message": message}}
            return 200, resource(
                "checkout.session",
                id=session_id,
                mode=form.get("mode", "payment"),
                customer=form.get("customer"),
                currency=form.get("currency"),
                success_url=form.get("success_url"),
                cancel_url=form.get("cancel_url"),
                payment_intent=None,
                setup_intent=f"seti_{session_id}" if form.get("mode") == "setup" else None,
                status="open",
                url=f"https://checkout.stripe.com/c/pay/{session_id}",
            )
        return 404, {"error": {"type": "invalid_request_error", "message": f"No such route: {method} {path}"}}

    def _pay(self, invoice_id: str, form: dict | None = None) -> tuple[int, dict]:
        form = form or {}
        obj = self.invoices.get(invoice_id)
        if obj is None:
            return 404, {"error": {"type": "invalid_request_error", "message": "No such invoice"}}
        if obj["status"] != "open":
            return 400, {
                "error": {
                    "type": "invalid_request_error",
                    "code": "invoice_not_open",
                    "message": "Invoice is already paid",
                }
            }
        decline = None if form.get("paid_out_of_band") == "true" else self.declines.get(invoice_id)
        if decline:
            error = {"type": "card_error", "code": "card_declined", "message": "Your card was declined."} | decline
            error["charge"] = self._new_charge(invoice_id)  # one failed charge per attempt, one intent
            self.last_errors[invoice_id] = dict(error)
            # A manual attempt counts as the first one, never more (Stripe's attempt_count).
            obj.update(attempted=True, attempt_count=max(obj.get("attempt_count") or 0, 1))
            # The CardError carries the whole PaymentIntent; its last_payment_error does not name the intent.
            error["payment_intent"] = self.payment_intent(invoice_id)
            return 402, {"error": error}
        charged = obj["amount_remaining"]
        obj.update(status="paid", amount_paid=obj["amount_due"], amount_remaining=0)
        if form.get("paid_out_of_band") == "true":
            obj["paid_out_of_band"] = True
            return 200, obj
        payments = self.invoice_payments.setdefault(invoice_id, [])
        payment = resource(
            "invoice_payment",
            id=f"inpay_{invoice_id}_{len(payments) + 1}",
            invoice=invoice_id,
            currency=obj["currency"],
            amount_requested=charged,
            amount_paid=charged,
            created=int(time.time()),
            status="paid",
            payment={"type": "payment_intent", "payment_intent": f"pi_{invoice_id}"},
            status_transitions={"paid_at": int(time.time()), "canceled_at": None},
        )
        payments.append(payment)
        self.charges.append({"invoice": invoice_id, "amount": charged, "payment": payment["id"]})
        return 200, obj

    def _mark_uncollectible(self, invoice_id: str) -> tuple[int, dict]:
        obj = self.invoices.get(invoice_id)
        if obj is None:
            return 404, {"error": {"type": "invalid_request_error", "message": "No such invoice"}}
        if obj["status"] != "open":
            message = f"You can only mark an open invoice as uncollectible; this one is {obj['status']}."
            return 400, {"error": {"type": "invalid_request_error", "code": "invoice_not_open", "message": message}}
        obj["status"] = "uncollectible"
        obj["status_transitions"] = {**obj.get("status_transitions", {}), "marked_uncollectible_at": int(time.time())}
        return 200, obj

    def _credit_note(self, form: dict) -> tuple[int, dict]:
        """A credit note before payment, as Stripe issues one: at most what is left to pay on an open
        invoice, which it takes off the invoice's amount_due and amount_remaining (its total stays) and
        adds to pre_payment_credit_notes_amount; an invoice left with nothing to pay is paid."""
        obj = self.invoices.get(form.get("invoice", ""))
        if obj is None:
            message = f"No such invoice: '{form.get('invoice')}'"
            return 404, {"error": {"type": "invalid_request_error", "param": "invoice", "message": message}}
        amount = int(form.get("amount") or 0)
        if obj["status"] != "open":
            message = "Pre-payment credit notes can only be issued on open invoices; this one is " + obj["status"]
            return 400, {"error": {"type": "invalid_request_error", "code": "invoice_not_open", "message": message}}
        if not 0 < amount <= obj["amount_remaining"]:
            message = (
                f"The sum of credit amount, refund amount and out of band amount ({amount}) must be between 1 and "
                f"the invoice's remaining amount ({obj['amount_remaining']})."
            )
            return 400, {"error": {"type": "invalid_request_error", "param": "amount", "message": message}}
        number = len(self.credit_notes) + 1
        note = resource(
            "credit_note",
            id=f"cn_fake{number}",
            invoice=obj["id"],
            customer=obj["customer"],
            currency=obj["currency"],
            amount=amount,
            subtotal=amount,
            subtotal_excluding_tax=amount,
            total=amount,
            total_excluding_tax=amount,
            pre_payment_amount=amount,
            post_payment_amount=0,
            refunds=[],
            memo=form.get("memo"),
            number=f"{obj.get('number') or obj['id']}-CN-{number:02d}",
            created=int(time.time()),
            effective_at=int(time.time()),
            voided_at=None,
            reason=form.get("reason"),
            status="issued",
            type="pre_payment",
            lines={"object": "list", "data": [], "has_more": False, "url": f"/v1/credit_notes/cn_fake{number}/lines"},
        )
        self.credit_notes[note["id"]] = note
        obj["amount_due"] -= amount
        obj["amount_remaining"] -= amount
        obj["pre_payment_credit_notes_amount"] = (obj.get("pre_payment_credit_notes_amount") or 0) + amount
        if obj["amount_remaining"] == 0:
            obj["status"] = "paid"
        return 200, note

    def _page(self, items: list[dict], query: dict, url: str, every: list[dict] | None = None) -> tuple[int, dict]:
        """One page of a list, as Stripe pages it: `limit` objects after `starting_after`, and
        whether more follow. The cursor is a place among `every` object of the kind, so it still
        works when its own object no longer matches the filter (an invoice paid since)."""
        limit = int(query.get("limit", ["10"])[0])
        after = query.get("starting_after", [None])[0]
        offset = 0
        if after:
            place = {item["id"]: number for number, item in enumerate(items if every is None else every)}
            if after not in place:
                message = f"No such object: '{after}'"
                return 400, {"error": {"type": "invalid_request_error", "param": "starting_after", "message": message}}
            offset = sum(1 for item in items if place[item["id"]] <= place[after])
        page = offset // limit + 1
        if self.broken_pages.get(url) == page:
            return 500, {"error": {"type": "api_error", "message": f"The fake's page {page} of {url} is down."}}
        items = items[offset:]
        return 200, {"object": "list", "url": url, "has_more": len(items) > limit, "data": items[:limit]}


class FakeStripeServer:
    def __init__(self, fake: FakeStripe) -> None:
        fake_ = fake

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, method: str) -> None:
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()} if length else {}
                with fake_.lock:
                    answer = fake_.handle(method, url.path, parse_qs(url.query), form, self.headers)
                if answer.stall_seconds:  # the work is done; the answer comes too late for the client
                    fake_.release.wait(answer.stall_seconds)
                data = json.dumps(answer.body).encode()
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("Request-Id", "req_fake")
                    if answer.replayed:
                        self.send_header("Idempotent-Replayed", "true")
                    if answer.status >= 500:  # as Stripe's own 500s say: stripe-python gives up at once, no sleeps
                        self.send_header("Stripe-Should-Retry", "false")
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def log_message(self, *args) -> None:
                return None

        self.fake = fake
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeStripeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.fake.release.set()
        self.server.shutdown()
        self.server.server_close()
