"""Signing in is throttled (django-axes): a username is locked for a while from an address after a
few failures, on the staff sign-in and the admin's alike; password reset mails are throttled too."""

import datetime as dt
import re

import pytest
import time_machine
from django.core import mail

from dunning_site.accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
PASSWORD = "correct horse battery staple"  # UserFactory's
SIGN_IN = "/accounts/login/"
ADMIN_SIGN_IN = "/admin/login/"
RESET = "/accounts/password_reset/"


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def grace():
    return UserFactory(username="grace", email="grace@example.com", is_staff=True)


def sign_in(client, username: str, password: str, page: str = SIGN_IN, address: str = "198.51.100.7"):
    return client.post(page, {"username": username, "password": password}, REMOTE_ADDR=address)


def signed_in(client) -> bool:
    return client.get("/dashboard/").status_code != 302


def visible_text(response) -> str:
    """The page without what differs from one response to the next (nonces, CSRF tokens)."""
    return re.sub(r'(nonce=|value=|"X-CSRFToken": )"[^"]*"', "", response.content.decode())


def test_the_right_password_after_too_many_wrong_ones_is_refused(client, grace, settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    for _ in range(150):
        sign_in(client, "grace", "wrong")
    response = sign_in(client, "grace", PASSWORD)
    assert response.status_code == 429
    assert not signed_in(client)


def test_the_lockout_page_says_when_to_try_again(client, grace):
    for attempt in range(4):
        assert sign_in(client, "grace", "wrong").status_code == 200, attempt  # the form, with its error
    response = sign_in(client, "grace", "wrong")
    assert response.status_code == 429
    page = response.content.decode()
    assert "Sign-in locked" in page
    assert "locked for 15 minutes" in page
    assert "Try again after <strong><time" in page and "12:15 UTC" in page


def test_after_the_cool_off_the_right_password_signs_in(client, grace, clock):
    for _ in range(5):
        sign_in(client, "grace", "wrong")
    clock.shift(dt.timedelta(minutes=14))
    assert sign_in(client, "grace", PASSWORD).status_code == 429, "an attempt while locked starts the wait again"
    clock.shift(dt.timedelta(minutes=16))
    response = sign_in(client, "grace", PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/"
    assert signed_in(client)


def test_the_same_username_from_another_address_is_not_locked(client, grace):
    for _ in range(5):
        sign_in(client, "grace", "wrong", address="198.51.100.7")
    assert sign_in(client, "grace", PASSWORD, address="203.0.113.20").status_code == 302


def test_a_locked_username_looks_the_same_whether_it_exists_or_not(client, grace):
    for _ in range(5):
        sign_in(client, "grace", "wrong")
        sign_in(client, "nobody", "wrong")
    known, unknown = sign_in(client, "grace", PASSWORD), sign_in(client, "nobody", PASSWORD)
    assert known.status_code == unknown.status_code == 429
    assert visible_text(known) == visible_text(unknown)


def test_the_admin_sign_in_is_locked_too(client, grace):
    for _ in range(5):
        sign_in(client, "grace", "wrong", page=ADMIN_SIGN_IN)
    assert sign_in(client, "grace", PASSWORD, page=ADMIN_SIGN_IN).status_code == 429
    assert client.get("/admin/").status_code == 302
    assert sign_in(client, "grace", PASSWORD).status_code == 429, "one lock for both doors"


def test_the_failure_limit_and_cool_off_come_from_the_environment(client, grace, settings, clock):
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = dt.timedelta(minutes=3)
    sign_in(client, "grace", "wrong")
    assert "locked for 3 minutes" in sign_in(client, "grace", "wrong").content.decode()
    clock.shift(dt.timedelta(minutes=4))
    assert sign_in(client, "grace", PASSWORD).status_code == 302


def ask_reset(client, email: str, address: str = "198.51.100.7"):
    return client.post(RESET, {"email": email}, REMOTE_ADDR=address)


def test_password_reset_mails_to_one_address_are_throttled(client, grace):
    for attempt in range(3):
        assert ask_reset(client, "grace@example.com", address=f"198.51.100.{attempt}").status_code == 302
    refused = ask_reset(client, "Grace@Example.com ", address="198.51.100.50")
    assert refused.status_code == 429
    assert "Too many password reset links" in refused.content.decode()
    assert len(mail.outbox) == 3


def test_password_reset_requests_from_one_address_are_throttled(client, grace):
    for number in range(10):
        assert ask_reset(client, f"someone{number}@example.com").status_code == 302
    assert ask_reset(client, "grace@example.com").status_code == 429
    assert len(mail.outbox) == 0
    assert ask_reset(client, "grace@example.com", address="203.0.113.20").status_code == 302
    assert len(mail.outbox) == 1


def test_a_throttled_reset_looks_the_same_whether_the_address_has_an_account_or_not(client, grace):
    for attempt in range(3):
        ask_reset(client, "grace@example.com", address=f"198.51.100.{attempt}")
        ask_reset(client, "nobody@example.com", address=f"198.51.100.{attempt}")
    known, unknown = ask_reset(client, "grace@example.com"), ask_reset(client, "nobody@example.com")
    assert known.status_code == unknown.status_code == 429
    assert visible_text(known) == visible_text(unknown)


def test_the_reset_link_still_lets_you_choose_a_new_password_and_sign_in(client, grace):
    ask_reset(client, "grace@example.com")
    (link,) = re.findall(r"http://testserver(/accounts/reset/\S+/)", mail.outbox[0].body)
    form = client.get(link, follow=True)
    new_password = "a much longer new password"
    response = client.post(form.redirect_chain[-1][0], {"new_password1": new_password, "new_password2": new_password})
    assert response.status_code == 302
    assert sign_in(client, "grace", new_password).status_code == 302


def test_behind_a_trusted_proxy_each_client_is_locked_on_its_own(client, grace, settings):
    """The proxy's own address is the same for everyone; the address it saw tells clients apart, and
    what a client writes into X-Forwarded-For itself does not let it start afresh."""
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = "10.0.0.2"
    for forged in range(5):
        client.post(
            SIGN_IN,
            {"username": "grace", "password": "wrong"},
            REMOTE_ADDR=proxy,
            HTTP_X_FORWARDED_FOR=f"192.0.2.{forged}, 198.51.100.7",
        )
    attacker = client.post(
        SIGN_IN, {"username": "grace", "password": PASSWORD}, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="198.51.100.7"
    )
    assert attacker.status_code == 429
    colleague = client.post(
        SIGN_IN, {"username": "grace", "password": PASSWORD}, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="203.0.113.20"
    )
    assert colleague.status_code == 302


def test_without_trusted_proxies_a_forwarded_header_changes_nothing(client, grace):
    for forged in range(5):
        client.post(
            SIGN_IN,
            {"username": "grace", "password": "wrong"},
            REMOTE_ADDR="198.51.100.7",
            HTTP_X_FORWARDED_FOR=f"192.0.2.{forged}",
        )
    assert sign_in(client, "grace", PASSWORD, address="198.51.100.7").status_code == 429
