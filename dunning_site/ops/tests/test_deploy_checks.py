"""`manage.py check --deploy` with the project's own checks: each case runs the command in a fresh
process with the environment a deployment would have, and asserts exactly which dunning.* ids it reports."""

import re

import pytest

from dunning_site.tests.test_settings import PRODUCTION, manage

ESP = {"EMAIL_BACKEND": "anymail.backends.postmark.EmailBackend", "ANYMAIL_POSTMARK_SERVER_TOKEN": "pm-token"}


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
            {"SMS_BACKEND": "dunning_site.notifications.sms.ConsoleBackend", "TWILIO_AUTH_TOKEN": ""}, id="no-twilio"
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
