"""Content-Security-Policy with nonces, and CSRF for plain forms and htmx requests alike."""

import datetime as dt
import json
import re

import pytest
from django.test import Client

from dunning_site.accounts.tests.factories import InvoiceFactory
from dunning_site.collections.models import Approval
from dunning_site.collections.tests.factories import standard_policy
from dunning_site.collections.tests.views.moment import NOW
from dunning_site.collections.tick import tick

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting():
    standard_policy()
    InvoiceFactory(due_on=NOW.date() - dt.timedelta(days=21), customer__name="Ada Lovelace")
    tick()
    return Approval.objects.get()


def directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}


def test_pages_carry_a_policy_that_refuses_inline_script(client, manager):
    response = client.get("/")
    policy = directives(response)
    assert policy["default-src"] == ["'self'"]
    assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["object-src"] == ["'none'"]
    # The one script tag (htmx, served from this site) carries this response's nonce.
    (nonce,) = [source[len("'nonce-") : -1] for source in policy["script-src"] if source.startswith("'nonce-")]
    scripts = re.findall(r"<script\b[^>]*>", response.content.decode())
    assert scripts and all(f'nonce="{nonce}"' in tag and "src=" in tag for tag in scripts)
    assert client.get("/").headers["Content-Security-Policy"] != response["Content-Security-Policy"]  # fresh nonce


def test_the_login_page_has_the_policy_too(client):
    assert "script-src" in client.get("/accounts/login/")["Content-Security-Policy"]


def htmx_headers_of(page: str) -> dict:
    (raw,) = re.findall(r"<body hx-headers='([^']*)'", page)
    return json.loads(raw)


def test_htmx_requests_carry_the_csrf_token_and_pass(manager, waiting):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(manager)
    headers = htmx_headers_of(strict.get("/approvals/").content.decode())
    response = strict.post(
        f"/approvals/{waiting.pk}/decide/", {"decision": "reject"}, headers={"HX-Request": "true", **headers}
    )
    assert response.status_code in (200, 302)
    waiting.refresh_from_db()
    assert waiting.status == Approval.Status.REJECTED


def test_an_htmx_request_without_the_token_is_refused(manager, waiting):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(manager)
    strict.get("/approvals/")  # sets the CSRF cookie
    response = strict.post(f"/approvals/{waiting.pk}/decide/", {"decision": "reject"}, headers={"HX-Request": "true"})
    assert response.status_code == 403
    waiting.refresh_from_db()
    assert waiting.status == Approval.Status.PENDING
