"""Settings come from the environment; each case runs manage.py in a fresh process."""

import os
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "x7#kq2!v9Lm4@pR8zT1&wN6^bY3$cF5*hJ0(dG2)sA9-eU4+iO7=",
    "ALLOWED_HOSTS": "dunning.example.com",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/dunning",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    # SMS go through Twilio in production: without its token, the deploy checks say so (dunning.E003).
    "TWILIO_ACCOUNT_SID": "AC0123456789abcdef0123456789abcdef",
    "TWILIO_AUTH_TOKEN": "0123456789abcdef0123456789abcdef",
    "TWILIO_FROM_NUMBER": "+33612345678",
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    # DJANGO_ALLOW_ASYNC_UNSAFE: the browser tests set it for this process; a deployment never has it.
    ours = (
        "DEBUG",
        "SECRET_KEY",
        "ALLOWED_HOSTS",
        "DATABASE_URL",
        "REDIS_URL",
        "EMAIL",
        "SECURE_",
        "ANYMAIL_",
        "DJANGO_ALLOW",
        "TWILIO_",
        "SMS_",
        "STRIPE_",
        "PAYMENTS_",
        "SERVICE_WEBHOOK",
        "HEALTH_",
    )
    clean = {key: value for key, value in os.environ.items() if not key.startswith(ours)}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_production_configuration_passes_the_deploy_checks_without_warnings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_run_without_a_secret_key():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **(PRODUCTION | {"SECRET_KEY": ""}))
    assert result.returncode != 0
    assert "security.W009" in result.stderr
    signing = manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.core import signing; signing.dumps(1)",
        **PRODUCTION | {"SECRET_KEY": ""},
    )
    assert "The SECRET_KEY setting must not be empty" in signing.stderr


def test_commands_that_sign_nothing_run_without_a_secret_key():
    result = manage("makemigrations", "--check", "--dry-run", **(PRODUCTION | {"SECRET_KEY": ""}))
    assert result.returncode == 0, result.stderr


def show(setting_names: str, **env: str) -> str:
    code = f"from django.conf import settings; print(*[getattr(settings, n) for n in {setting_names.split()!r}])"
    result = manage("shell", "--no-imports", "-c", code, **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_email_url_selects_plain_smtp():
    shown = show(
        "EMAIL_BACKEND EMAIL_HOST EMAIL_PORT EMAIL_HOST_USER EMAIL_USE_TLS EMAIL_TIMEOUT",
        **PRODUCTION,
        EMAIL_URL="smtp+tls://mailer:s3cret@mail.example.com:587",
    )
    # The project's SMTP backend: Django's, telling a failure after the hand-over from one before.
    assert shown == "dunning_site.notifications.smtp.EmailBackend mail.example.com 587 mailer True 20"


def test_an_esp_is_chosen_by_backend_and_configured_by_anymail_variables():
    shown = show(
        "EMAIL_BACKEND ANYMAIL",
        **PRODUCTION,
        EMAIL_BACKEND="anymail.backends.postmark.EmailBackend",
        ANYMAIL_POSTMARK_SERVER_TOKEN="token-123",
    )
    # EMAIL_TIMEOUT's default bounds the ESP's API calls too.
    assert shown == (
        "anymail.backends.postmark.EmailBackend {'POSTMARK_SERVER_TOKEN': 'token-123', 'REQUESTS_TIMEOUT': 20}"
    )


def test_without_database_url_the_demo_runs_on_sqlite_in_wal_mode(tmp_path):
    shown = show("DATABASES", DEBUG="true")
    assert "django.db.backends.sqlite3" in shown
    assert "journal_mode=WAL" in shown
    assert "'timeout': 20" in shown
