"""`manage.py check --deploy` with the project's own checks: each case runs the command in a fresh
process with the environment a deployment would have, and asserts exactly which dunning.* ids it reports."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from dunning_site.collections.models import Policy
from dunning_site.ops.checks import DEMO_LOGINS, NO_ACTIVE_POLICY
from dunning_site.tests.test_settings import PRODUCTION, manage

ESP = {"EMAIL_BACKEND": "anymail.backends.postmark.EmailBackend", "ANYMAIL_POSTMARK_SERVER_TOKEN": "pm-token"}
SMS_CONSOLE = "dunning_site.notifications.sms.ConsoleBackend"


def reported(**env: str) -> tuple[int, set[str]]:
    result = manage("check", "--deploy", **(PRODUCTION | env))
    return result.returncode, set(re.findall(r"\((dunning\.[EW]\d{3})\)", result.stderr + result.stdout))


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param({"PAYMENTS_SANDBOX": "true"}, {"dunning.E001"}, id="sandbox-without-debug"),
        pytest.param(ESP, {"dunning.E002"}, id="anymail-without-webhook-secret"),
        pytest.param({"TWILIO_AUTH_TOKEN": ""}, {"dunning.E003"}, id="twilio-without-auth-token"),
        pytest.param(
            {"SERVICE_WEBHOOK_URL": "https://product.example/hooks/dunning"},
            {"dunning.E004"},
            id="service-webhook-without-secret",
        ),
        pytest.param({"STRIPE_API_KEY": "sk_live_configured"}, {"dunning.E005"}, id="stripe-without-webhook-secret"),
        pytest.param({"EMAIL_TIMEOUT": "0"}, {"dunning.E006"}, id="email-timeout-zero"),
        pytest.param({"EMAIL_TIMEOUT": "600"}, {"dunning.E006"}, id="email-timeout-beyond-the-job"),
        pytest.param(
            {"DJANGO_SETTINGS_MODULE": "dunning_site.ops.tests.settings_without_email_timeout"},
            {"dunning.E006"},
            id="email-timeout-unset",
        ),
        *[
            pytest.param({"EMAIL_BACKEND": backend}, {"dunning.E007"}, id=f"email-{backend.split('.')[-2]}")
            for backend in (
                "django.core.mail.backends.filebased.EmailBackend",
                "django.core.mail.backends.console.EmailBackend",
                "django.core.mail.backends.locmem.EmailBackend",
                "django.core.mail.backends.dummy.EmailBackend",
                "anymail.backends.test.EmailBackend",
            )
        ],
        pytest.param({"SMS_BACKEND": SMS_CONSOLE}, {"dunning.E008"}, id="sms-console"),
        pytest.param(
            {"SMS_BACKEND": SMS_CONSOLE, "TWILIO_AUTH_TOKEN": ""}, {"dunning.E008"}, id="sms-console-no-twilio"
        ),
        pytest.param(
            {"SMS_BACKEND": "dunning_site.notifications.sms.LocmemBackend"}, {"dunning.E008"}, id="sms-locmem"
        ),
    ],
)
def test_a_dangerous_or_dead_setting_is_a_deploy_error(env, expected):
    returncode, ids = reported(**env)
    assert ids == expected
    assert returncode != 0, "errors make check --deploy fail, so a deployment script stops"


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({"PAYMENTS_SANDBOX": "true", "STRIPE_API_KEY": "sk_live_x", "STRIPE_WEBHOOK_SECRET": "whsec_x"}),
        pytest.param(ESP | {"ANYMAIL_WEBHOOK_SECRET": "dunning:9f8e7d6c5b4a"}, id="anymail-with-secret"),
        pytest.param(
            {"DEBUG": "true", "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend"},
            id="development-backends-with-debug",
        ),
        pytest.param(
            {"SERVICE_WEBHOOK_URL": "https://product.example/hooks", "SERVICE_WEBHOOK_SECRET": "s3cret-0123456789"},
            id="service-webhook-with-secret",
        ),
        pytest.param({"EMAIL_TIMEOUT": "30"}, id="email-timeout-a-quarter-of-the-job"),
    ],
)
def test_the_same_features_configured_pass(env):
    returncode, ids = reported(**env)
    assert ids == set()
    assert returncode == 0


def test_the_checks_only_run_for_deploy():
    """A developer's `manage.py check` (and `make run`) is not stopped by production-only checks."""
    result = manage("check", **(PRODUCTION | {"PAYMENTS_SANDBOX": "true", "TWILIO_AUTH_TOKEN": ""}))
    assert result.returncode == 0, result.stderr
    assert "dunning." not in result.stdout + result.stderr


def database_url() -> str:
    """The test database, for a `manage.py` process of its own."""
    db = connection.settings_dict
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)  # committed, so that the check's own process sees the users
def test_the_demos_logins_with_their_demo_passwords_are_a_deploy_error_when_the_database_is_checked():
    Policy.objects.create(name="Default")  # the database dunning_setup has set up (else dunning.W002)
    User = get_user_model()
    User.objects.create_superuser("admin", "admin@example.com", "admin")
    User.objects.create_user("viewer", "viewer@example.com", "viewer")
    User.objects.create_user("collector", "collector@example.com", "a-password-of-their-own")
    User.objects.create_user("manager", "manager@example.com", "manager", is_active=False)  # cannot sign in
    env = PRODUCTION | {"DATABASE_URL": database_url()}

    result = manage("check", "--deploy", "--database", "default", **env)
    ids = set(re.findall(r"\((dunning\.[EW]\d{3})\)", result.stderr + result.stdout))
    assert ids == {"dunning.E009"}, result.stderr
    assert DEMO_LOGINS.msg % {"usernames": "admin, viewer"} in result.stderr
    assert result.returncode != 0

    assert reported(DATABASE_URL=database_url()) == (0, set()), "without --database no user is read"

    admin = User.objects.get(username="admin")
    admin.set_password("correct horse battery staple")
    admin.save()
    User.objects.filter(username="viewer").delete()
    result = manage("check", "--deploy", "--database", "default", **env)
    assert result.returncode == 0, result.stderr
    assert "dunning." not in result.stdout + result.stderr


@pytest.mark.django_db(transaction=True)  # committed, so that the check's own process sees the policies
def test_a_database_without_an_active_policy_is_a_warning_until_dunning_setup_has_run():
    env = PRODUCTION | {"DATABASE_URL": database_url()}
    result = manage("check", "--deploy", "--database", "default", **env)
    assert result.returncode == 0, "a warning: a first deployment checks before it sets up"
    assert set(re.findall(r"\((dunning\.[EW]\d{3})\)", result.stderr)) == {"dunning.W002"}
    assert NO_ACTIVE_POLICY.msg % {"alias": "default"} in result.stderr
    assert reported(DATABASE_URL=database_url()) == (0, set()), "without --database no policy is read"

    result = manage("dunning_setup", **env)
    assert result.returncode == 0, result.stderr
    result = manage("check", "--deploy", "--database", "default", **env)
    assert result.returncode == 0, result.stderr
    assert "dunning." not in result.stdout + result.stderr

    Policy.objects.update(is_active=False)  # switched off in the finance UI: nobody is dunned any more
    result = manage("check", "--deploy", "--database", "default", **env)
    assert set(re.findall(r"\((dunning\.[EW]\d{3})\)", result.stderr)) == {"dunning.W002"}


def test_a_database_it_cannot_read_is_a_warning_that_lets_the_deployment_go_on():
    unreachable = "postgres://postgres@127.0.0.1:5432/dunning_database_never_created"
    result = manage("check", "--deploy", "--database", "default", **(PRODUCTION | {"DATABASE_URL": unreachable}))
    assert result.returncode == 0, result.stderr
    assert set(re.findall(r"\((dunning\.[EW]\d{3})\)", result.stderr)) == {"dunning.W001"}
    assert 'database "dunning_database_never_created" does not exist' in result.stderr
