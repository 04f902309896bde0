"""Fixtures shared by the collections tests: the customer's product, receiving service webhooks."""

import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dunning_site.collections.service_hooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from dunning_site.collections.tests import stripe_fake


@dataclasses.dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    def is_signed_with(self, secret: str) -> bool:
        return verify_signature(secret, self.headers[TIMESTAMP_HEADER], self.body, self.headers[SIGNATURE_HEADER])


class Receiver:
    """The customer's product: answers each request with the next queued status (the last one repeats)."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._statuses = [200]
        self._lock = threading.Lock()
        self.url = ""

    def answer(self, *statuses: int) -> None:
        self._statuses = list(statuses)

    def next_status(self) -> int:
        with self._lock:
            return self._statuses.pop(0) if len(self._statuses) > 1 else self._statuses[0]


@pytest.fixture
def receiver():
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.requests.append(Received("POST", self.path, dict(self.headers), body))
            status = state.next_status()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if status < 300 else b"receiver is down")

        def log_message(self, format, *args) -> None:  # keep the test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/dunning"
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def stripe_api(settings):
    """stripe-python talking to the local fake Stripe (collections/tests/stripe_fake.py), over HTTP."""
    fake = stripe_fake.FakeStripe()
    with stripe_fake.FakeStripeServer(fake) as server:
        settings.STRIPE_API_KEY = "sk_test_fake"
        settings.STRIPE_API_BASE = server.url
        settings.STRIPE_WEBHOOK_SECRET = stripe_fake.WEBHOOK_SECRET
        yield fake


@pytest.fixture
def deliver(client, run_jobs, django_capture_on_commit_callbacks):
    """Deliver a Stripe event as Stripe does: signed, POSTed to /webhooks/stripe/ (which must take it),
    then the job it enqueued run as a worker would."""

    def post(payload: dict) -> object:
        body, header = stripe_fake.signed(payload)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                "/webhooks/stripe/", body, content_type="application/json", HTTP_STRIPE_SIGNATURE=header
            )
        assert response.status_code == 200
        run_jobs()
        return response

    return post
