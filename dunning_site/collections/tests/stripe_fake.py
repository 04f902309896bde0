"""A local fake of the Stripe API for tests: real HTTP on 127.0.0.1, real stripe-python on the
other side (through STRIPE_API_BASE), and objects built from Stripe's own published examples
(../shared/stripe/fixtures3.json) with only the fields a test is about changed.
"""

import copy
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import stripe

FIXTURES = Path(__file__).resolve().parent / "stripe" / "fixtures3-subset.json"
WEBHOOK_SECRET = "whsec_test_secret_for_the_fake"
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


class FakeStripe:
    """State the tests arrange: invoices, customers, and how each invoice's next payment ends."""

    def __init__(self) -> None:
        self.invoices: dict[str, dict] = {}
        self.customers: dict[str, dict] = {}
        self.declines: dict[str, dict] = {}  # invoice id → Stripe error object for its next /pay
        self.last_errors: dict[str, dict] = {}  # invoice id → last_payment_error of its latest attempt
        self.requests: list[tuple[str, str, dict]] = []
        self.idempotent: dict[str, tuple[int, dict]] = {}
        self.lock = threading.Lock()

    def handle(self, method: str, path: str, query: dict, form: dict, headers) -> tuple[int, dict]:
        self.requests.append((method, path, form))
        key = headers.get("Idempotency-Key")
        if method == "POST" and key and key in self.idempotent:
            return self.idempotent[key]
        result = self._route(method, path, query, form)
        if method == "POST" and key:
            self.idempotent[key] = result
        return result

    def _route(self, method: str, path: str, query: dict, form: dict) -> tuple[int, dict]:
        parts = path.strip("/").split("/")[1:]  # drop "v1"
        if parts == ["invoices"]:
            status = query.get("status", [None])[0]
            items = [obj for obj in self.invoices.values() if not status or obj["status"] == status]
            return self._page(items, query, "/v1/invoices")
        if parts == ["customers"]:
            return self._page(list(self.customers.values()), query, "/v1/customers")
        if len(parts) == 2 and parts[0] == "invoices" and parts[1] in self.invoices:
            return 200, self.invoices[parts[1]]
        if len(parts) == 3 and parts[0] == "invoices" and parts[2] == "pay" and method == "POST":
            return self._pay(parts[1])
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
            invoice_id = parts[1].removeprefix("pi_")
            return 200, resource(
                "payment_intent",
                id=parts[1],
                status="requires_payment_method",
                last_payment_error=self.last_errors.get(invoice_id),
            )
        return 404, {"error": {"type": "invalid_request_error", "message": f"No such route: {method} {path}"}}

    def _pay(self, invoice_id: str) -> tuple[int, dict]:
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
        decline = self.declines.get(invoice_id)
        if decline:
            error = {"type": "card_error", "code": "card_declined", "message": "Your card was declined."} | decline
            error["payment_intent"] = {"id": f"pi_{invoice_id}", "object": "payment_intent"}
            self.last_errors[invoice_id] = error
            return 402, {"error": error}
        obj.update(status="paid", amount_paid=obj["amount_due"], amount_remaining=0)
        return 200, obj

    @staticmethod
    def _page(items: list[dict], query: dict, url: str) -> tuple[int, dict]:
        limit = int(query.get("limit", ["10"])[0])
        after = query.get("starting_after", [None])[0]
        if after:
            ids = [item["id"] for item in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
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
                    status, body = fake_.handle(method, url.path, parse_qs(url.query), form, self.headers)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", "req_fake")
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

            def log_message(self, *args) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeStripeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
