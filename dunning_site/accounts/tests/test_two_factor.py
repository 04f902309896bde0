"""Two-factor sign-in: staff enrol an authenticator app, then every sign-in asks for its code before
any page (the admin's too); STAFF_2FA_REQUIRED obliges the roles it names to enrol first."""

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import time_machine
from axes.models import AccessAttempt
from django.contrib.auth.models import Group
from django.test import Client
from django.utils.html import escape
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from dunning_site.accounts.tests.factories import UserFactory
from dunning_site.accounts.views import CODE_JUST_USED, ENROLLED, WRONG_CODE

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
PASSWORD = "correct horse battery staple"  # UserFactory's
ENROL = "/accounts/two-factor/enrol/"
VERIFY = "/accounts/two-factor/"


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def staff(username: str, role: str | None = None, **fields):
    user = UserFactory(username=username, is_staff=True, **fields)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


def code(device: TOTPDevice) -> str:
    """What the authenticator app shows now."""
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=device.drift):06d}"


def sign_in(client, username: str, password: str = PASSWORD):
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR="198.51.100.7")


def enrolled(username: str, role: str | None = None, **fields):
    user = staff(username, role, **fields)
    return user, TOTPDevice.objects.create(user=user, name="Phone", confirmed=True)


def test_a_staff_member_enrols_then_every_sign_in_asks_for_the_code(client, clock):
    grace = staff("grace", "Collector")
    assert sign_in(client, "grace").status_code == 302
    page = client.get(ENROL)
    assert page.status_code == 200
    assert "<svg" in page.content.decode(), "the QR code is drawn inline: no script, no external image"
    device = TOTPDevice.objects.get(user=grace, confirmed=False)
    response = client.post(ENROL, {"otp_token": code(device)}, follow=True)
    assert ENROLLED in response.content.decode()
    device.refresh_from_db()
    assert device.confirmed

    client.post("/accounts/logout/")
    clock.shift(dt.timedelta(seconds=30))
    assert sign_in(client, "grace").status_code == 302
    for page in ("/", "/cases/", "/admin/", "/django-rq/"):
        response = client.get(page)
        assert response.status_code == 302 and response["Location"].startswith(f"{VERIFY}?next="), page
    response = client.post(f"{VERIFY}?next=/cases/", {"otp_token": code(device), "next": "/cases/"})
    assert response.status_code == 302 and response["Location"] == "/cases/"
    assert client.get("/cases/").status_code == 200


def test_a_code_cannot_be_used_twice(client, clock):
    _user, device = enrolled("grace", "Collector")
    used = code(device)
    sign_in(client, "grace")
    client.post(VERIFY, {"otp_token": used})
    client.post("/accounts/logout/")
    clock.shift(dt.timedelta(seconds=5))
    sign_in(client, "grace")
    response = client.post(VERIFY, {"otp_token": used})
    assert response.status_code == 400 and escape(CODE_JUST_USED) in response.content.decode()
    assert client.get("/cases/").status_code == 302


def test_a_second_browser_reusing_the_code_is_told_to_wait_and_no_failure_counts(clock, settings):
    _user, device = enrolled("grace", "Collector")
    first, second = Client(), Client()
    used = code(device)
    sign_in(first, "grace")
    assert first.post(VERIFY, {"otp_token": used}).status_code == 302
    sign_in(second, "grace")
    # More reuses than the lockout allows failures: none of them is one.
    for attempt in range(settings.AXES_FAILURE_LIMIT + 1):
        clock.shift(dt.timedelta(seconds=1))
        response = second.post(VERIFY, {"otp_token": used})
        assert response.status_code == 400, attempt
        page = response.content.decode()
        assert escape(CODE_JUST_USED) in page and escape(WRONG_CODE) not in page
    assert not AccessAttempt.objects.exists()
    device.refresh_from_db()
    assert device.throttling_failure_count == 0
    assert second.get("/cases/").status_code == 302, "still not signed in"
    clock.shift(dt.timedelta(seconds=30))  # the app shows the next code
    assert second.post(VERIFY, {"otp_token": code(device), "next": "/cases/"})["Location"] == "/cases/"
    assert second.get("/cases/").status_code == 200


def test_signing_in_again_right_after_enrolling_with_the_same_code_says_it_was_used(client, clock):
    grace = staff("grace", "Collector")
    sign_in(client, "grace")
    client.get(ENROL)
    device = TOTPDevice.objects.get(user=grace)
    used = code(device)
    assert client.post(ENROL, {"otp_token": used}).status_code == 302
    client.post("/accounts/logout/")
    clock.shift(dt.timedelta(seconds=10))
    sign_in(client, "grace")
    response = client.post(VERIFY, {"otp_token": used})
    assert response.status_code == 400 and escape(CODE_JUST_USED) in response.content.decode()
    assert not AccessAttempt.objects.exists()


def test_a_wrong_code_next_to_a_used_one_still_counts(client, clock):
    _user, device = enrolled("grace", "Collector")
    used = code(device)
    sign_in(client, "grace")
    client.post(VERIFY, {"otp_token": used})
    client.post("/accounts/logout/")
    sign_in(client, "grace")
    wrong = f"{(int(used) + 1) % 1_000_000:06d}"
    response = client.post(VERIFY, {"otp_token": wrong})
    assert response.status_code == 400 and escape(WRONG_CODE) in response.content.decode()
    assert AccessAttempt.objects.get(username="grace").failures_since_start == 1


def test_the_code_page_shows_nothing_but_the_way_out_until_the_code_is_given(client):
    _user, device = enrolled("grace", "Collector", first_name="Grace", last_name="Hopper")
    sign_in(client, "grace")
    page = client.get(VERIFY).content.decode()
    assert "Sign out" in page
    for hidden in ("Grace Hopper", 'aria-label="Main"', "nav-count", "Two-factor sign-in", "/cases/", "Payments:"):
        assert hidden not in page, hidden
    assert 'href="/"' not in page, "not even the brand links to the worklist"
    client.post(VERIFY, {"otp_token": code(device)})
    page = client.get("/").content.decode()
    assert "Grace Hopper" in page and 'aria-label="Main"' in page and "Sign out" in page


def test_a_role_that_must_enrol_sees_only_the_way_out_until_it_has(client, settings):
    settings.STAFF_2FA_REQUIRED = ["Manager"]
    staff("morgan", "Manager", first_name="Morgan")
    staff("casey", "Collector", first_name="Casey")
    sign_in(client, "morgan")
    page = client.get(ENROL).content.decode()
    assert "Sign out" in page and 'aria-label="Main"' not in page and "Morgan" not in page
    client.post("/accounts/logout/")
    sign_in(client, "casey")  # enrolling by choice, fully signed in: the whole navigation
    page = client.get(ENROL).content.decode()
    assert 'aria-label="Main"' in page and "Casey" in page


def test_wrong_codes_count_toward_the_lockout(client, clock, settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    client.defaults["REMOTE_ADDR"] = "198.51.100.7"  # the lockout is per username and address
    _user, device = enrolled("grace", "Collector")
    sign_in(client, "grace", "wrong")  # one wrong password…
    sign_in(client, "grace")
    for attempt in range(3):  # …and three wrong codes
        clock.shift(dt.timedelta(seconds=30))  # past django-otp's own growing delay between tries
        response = client.post(VERIFY, {"otp_token": "000000"})
        assert response.status_code == 400, attempt
    clock.shift(dt.timedelta(seconds=30))
    response = client.post(VERIFY, {"otp_token": "000000"})  # the fifth failure
    assert response.status_code == 429
    assert "Sign-in locked" in response.content.decode()
    assert client.get("/cases/")["Location"].startswith("/accounts/login/"), "signed out"
    clock.shift(dt.timedelta(seconds=30))
    assert sign_in(client, "grace").status_code == 429, "the right password is refused too"
    assert client.post(VERIFY, {"otp_token": code(device)}).status_code == 302  # to sign in: nobody is signed in


def test_a_password_alone_never_adds_a_device_to_an_enrolled_account(client):
    enrolled("grace", "Collector")
    sign_in(client, "grace")
    response = client.get(ENROL)
    assert response.status_code == 302 and response["Location"] == VERIFY
    client.post(ENROL, {"otp_token": "123456"})
    assert TOTPDevice.objects.count() == 1


def test_without_the_setting_nobody_is_asked_to_enrol(client, settings):
    assert settings.STAFF_2FA_REQUIRED == []
    staff("morgan", "Manager")
    staff("root", is_superuser=True)
    for username in ("morgan", "root"):
        sign_in(client, username)
        assert client.get("/approvals/").status_code == 200, username
        client.post("/accounts/logout/")


def test_when_required_managers_and_admins_enrol_before_anything_else(client, settings):
    settings.STAFF_2FA_REQUIRED = ["Manager", "Admin"]
    staff("morgan", "Manager")
    staff("root", is_superuser=True)
    staff("casey", "Collector")
    for username in ("morgan", "root"):
        sign_in(client, username)
        for page in ("/approvals/", "/admin/", f"{VERIFY}"):
            response = client.get(page)
            assert response.status_code == 302 and response["Location"].startswith(ENROL), (username, page)
        assert "Your role signs in with a code" in client.get(ENROL).content.decode()
        client.post("/accounts/logout/")
    sign_in(client, "casey")
    assert client.get("/cases/").status_code == 200, "collectors are not named"


def test_a_manager_who_enrols_when_required_reaches_the_page_asked_for(client, settings):
    settings.STAFF_2FA_REQUIRED = ["Manager", "Admin"]
    morgan = staff("morgan", "Manager")
    sign_in(client, "morgan")
    assert client.get("/approvals/")["Location"] == f"{ENROL}?next=/approvals/"
    client.get(f"{ENROL}?next=/approvals/")
    device = TOTPDevice.objects.get(user=morgan)
    response = client.post(ENROL, {"otp_token": code(device), "next": "/approvals/"})
    assert response.status_code == 302 and response["Location"] == "/approvals/"
    assert client.get("/approvals/").status_code == 200
    assert client.get("/admin/").status_code == 200


def test_a_wrong_code_at_enrolment_says_what_to_do(client):
    grace = staff("grace", "Collector")
    sign_in(client, "grace")
    client.get(ENROL)
    response = client.post(ENROL, {"otp_token": "12345"})
    assert response.status_code == 400
    assert "The code is the six digits your app shows." in response.content.decode()
    response = client.post(ENROL, {"otp_token": "000000"})
    assert WRONG_CODE in response.content.decode()
    assert not TOTPDevice.objects.filter(user=grace, confirmed=True).exists()


def test_the_next_page_never_leads_off_the_site(client, clock):
    _user, device = enrolled("grace", "Collector")
    sign_in(client, "grace")
    response = client.post(VERIFY, {"otp_token": code(device), "next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == "/"


SETTINGS_PROBE = "from django.conf import settings; print(settings.STAFF_2FA_REQUIRED)"


@pytest.mark.parametrize(
    ("value", "roles"),
    [
        (None, "[]"),
        ("false", "[]"),
        ("true", "['Manager', 'Admin']"),
        ("Manager, Collector", "['Manager', 'Collector']"),
    ],
)
def test_the_roles_required_come_from_the_environment(value, roles):
    env = {key: item for key, item in os.environ.items() if key != "STAFF_2FA_REQUIRED"}
    if value is not None:
        env["STAFF_2FA_REQUIRED"] = value
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", SETTINGS_PROBE],
        cwd=Path(__file__).resolve().parents[3],
        env=env | {"DEBUG": "true"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip().splitlines()[-1] == roles, result.stderr


def test_the_verification_page_lists_no_secret(client):
    _user, device = enrolled("grace", "Collector")
    sign_in(client, "grace")
    page = client.get(VERIFY).content.decode()
    assert device.key not in page and not re.search(r"<svg", page)
