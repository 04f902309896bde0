"""One settings module, driven by the environment (see the table in README.md)."""

import datetime as dt
import re
from pathlib import Path

import csp.constants
import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

# A development key only when DEBUG is on. Without one in production, Django refuses the first thing
# that needs it (sessions, signed links) with "The SECRET_KEY setting must not be empty", while
# commands that sign nothing (makemigrations, check) still run.
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY and DEBUG:
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production-0123456789abcdef"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_rq",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_ratelimit",
    "anymail",
    "django_filters",
    "django_htmx",
    "template_partials",
    "csp",
    "import_export",
    "dunning_site.accounts",
    "dunning_site.notifications",
    "dunning_site.collections",
    "dunning_site.portal",
    "dunning_site.ops",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "dunning_site.accounts.two_factor.TwoFactorMiddleware",
    "dunning_site.lib.middleware.UserTimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: it turns a lockout into its page
]

# Content-Security-Policy (django-csp): scripts only from this site or with the request's nonce, so
# injected markup cannot run script. Styles allow inline attributes: the Django admin's widgets set
# them, and a style cannot run code. Stripe Checkout is reached by redirect, which CSP does not govern.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [csp.constants.SELF],
        "script-src": [csp.constants.SELF, csp.constants.NONCE],
        "style-src": [csp.constants.SELF, csp.constants.UNSAFE_INLINE],
        "img-src": [csp.constants.SELF, "data:"],
        "object-src": [csp.constants.NONE],
        "base-uri": [csp.constants.SELF],
        "form-action": [csp.constants.SELF],
        "frame-ancestors": [csp.constants.NONE],
    }
}

ROOT_URLCONF = "dunning_site.urls"
WSGI_APPLICATION = "dunning_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dunning_site.accounts.context_processors.billing",
                "dunning_site.collections.context_processors.worklist_counts",
                "dunning_site.accounts.two_factor.second_factor_owed",
            ],
        },
    },
]

# Database: PostgreSQL in production and tests; a SQLite file is the zero-setup default of `make run`.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while the worker writes; IMMEDIATE transactions and a busy
    # timeout make the two processes queue for the write lock instead of failing with "locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "collections:worklist"
LOGOUT_REDIRECT_URL = "login"

# Sign-in throttling (django-axes): after AXES_FAILURE_LIMIT failures (wrong passwords and wrong
# two-factor codes alike) for one username from one address, that pair is refused for
# AXES_COOLOFF_MINUTES after its latest attempt. Attempts are rows in the database, shared by every
# web process; a success does not wipe earlier failures, or a known password would reopen code guessing.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = False
AXES_LOCKOUT_CALLABLE = "dunning_site.accounts.views.locked_out"
AXES_VERBOSE = False  # no start-up banner in every command
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "otp_token"]
# Password reset mails are throttled per client address and per address asked for (django-ratelimit,
# counting in the shared cache below), so nobody can mail-bomb a colleague or probe addresses.
PASSWORD_RESET_RATE_PER_IP = env.str("PASSWORD_RESET_RATE_PER_IP", default="10/h")
PASSWORD_RESET_RATE_PER_EMAIL = env.str("PASSWORD_RESET_RATE_PER_EMAIL", default="3/h")
# One answer to "which address is this?" for both: REMOTE_ADDR, or behind TRUSTED_PROXY_COUNT proxies
# the address the outermost one saw (lib/client_address.py). Behind a proxy left at 0, every client
# would share the proxy's address: one lockout for everybody.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
AXES_CLIENT_IP_CALLABLE = "dunning_site.lib.client_address.client_address"
RATELIMIT_IP_META_KEY = "dunning_site.lib.client_address.client_address"
# Two-factor sign-in (django-otp, TOTP). STAFF_2FA_REQUIRED: "false" (nobody has to, anyone may
# enrol), "true" (Managers and Admins, superusers included), or the role names, comma-separated.
_two_factor = env.str("STAFF_2FA_REQUIRED", default="false").strip()
STAFF_2FA_REQUIRED = (
    ["Manager", "Admin"]
    if _two_factor.lower() in ("true", "yes", "on", "1")
    else []
    if _two_factor.lower() in ("false", "no", "off", "0", "")
    else [role.strip() for role in _two_factor.split(",") if role.strip()]
)
OTP_TOTP_ISSUER = "Dunning back-office"
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # the admin never shows a device's secret or its QR code

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

INTERNAL_IPS = ["127.0.0.1"]  # the `debug` template variable is set for these when DEBUG is on

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# The languages customers' pages and the branded email part are written in (locale/<code>/, the .po files
# committed, the .mo files compiled by `make run` and `make test`). A customer's page speaks the language
# of their record (Customer.language: de-AT reads German, pt-BR English); staff pages stay English, and no
# LocaleMiddleware reads a browser's Accept-Language for them.
LANGUAGES = [("en", "English"), ("de", "German"), ("fr", "French"), ("es", "Spanish")]
LOCALE_PATHS = [BASE_DIR / "locale"]

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "var" / "static")
STATICFILES_DIRS = [BASE_DIR / "static"]

# Uploaded and generated files (printable letters). Served only through staff-only views.
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "var" / "media")
MEDIA_URL = "/media/"
# What customers send from the portal (a dispute's evidence): never under MEDIA_ROOT, never served by a
# URL of its own; staff download it through a view that checks their permission.
PRIVATE_MEDIA_ROOT = env.path("PRIVATE_MEDIA_ROOT", default=BASE_DIR / "var" / "private")
PORTAL_ATTACHMENT_MAX_BYTES = env.int("PORTAL_ATTACHMENT_MAX_BYTES", default=5 * 1024 * 1024)
# Requests per minute from one client address to the customer portal (a link guesser gets a 429).
PORTAL_RATE_PER_MINUTE = env.int("PORTAL_RATE_PER_MINUTE", default=30)

# SMS: a backend chosen like Django's email backends. Twilio in production, the console in
# development, an in-memory outbox in tests.
SMS_BACKEND = env.str(
    "SMS_BACKEND",
    default="dunning_site.notifications.sms.ConsoleBackend"
    if DEBUG
    else "dunning_site.notifications.sms.TwilioBackend",
)
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="")
TWILIO_FROM_NUMBER = env.str("TWILIO_FROM_NUMBER", default="")
TWILIO_MESSAGING_SERVICE_SID = env.str("TWILIO_MESSAGING_SERVICE_SID", default="")

# Billing: Stripe when STRIPE_API_KEY is set; otherwise a clearly labelled local sandbox gateway
# (never used when a key is set) so every flow can be tried without an account, or none at all.
STRIPE_API_KEY = env.str("STRIPE_API_KEY", default="")
# The sandbox marks invoices paid for whoever holds a card link, so it runs only in development or
# when asked for by name (a demo server); otherwise, without a key, payments are "not configured".
PAYMENTS_SANDBOX = env.bool("PAYMENTS_SANDBOX", default=DEBUG)
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
# Only for a local fake Stripe (tests, demos); empty means Stripe's own https://api.stripe.com.
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
# Seconds a Stripe request waits for its answer (stripe-python asks twice more, with the same idempotency
# key, before giving up): well inside RQ's job timeout, so a hung connection is an unknown outcome the
# retry resolves later, never a job killed mid-charge.
STRIPE_TIMEOUT_SECONDS = env.float("STRIPE_TIMEOUT_SECONDS", default=30)
# Suspension and reinstatement: the customer's product is told through a signed outgoing webhook.
SERVICE_WEBHOOK_URL = env.str("SERVICE_WEBHOOK_URL", default="")
SERVICE_WEBHOOK_SECRET = env.str("SERVICE_WEBHOOK_SECRET", default="")
# Also pause collection of the Stripe subscription while suspended.
SUSPEND_STRIPE_SUBSCRIPTION = env.bool("SUSPEND_STRIPE_SUBSCRIPTION", default=False)

# Redis and RQ. Every background job goes through these queues; nothing runs in-process.
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
RQ_QUEUES = {
    "default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 300},
    "messages": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 120},
}
RQ_SHOW_ADMIN_LINK = False  # the dashboard is /django-rq/, for Admins only (dunning_site/urls.py)
# A cache shared by every web process (the password-reset throttle counts in it).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
# django-ratelimit knows Django's own Redis cache only by another name; it is shared and atomic.
# A refused form's page, in the browser's language (templates/403_csrf.html).
CSRF_FAILURE_VIEW = "dunning_site.accounts.customer_pages.csrf_failure"
SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]

# Email. EMAIL_URL (smtp://user:pass@host:587, smtp+tls://…) selects plain SMTP; EMAIL_BACKEND
# selects an Anymail ESP (anymail.backends.postmark.EmailBackend, …) whose settings come from
# ANYMAIL_* variables (ANYMAIL_POSTMARK_SERVER_TOKEN=… becomes ANYMAIL["POSTMARK_SERVER_TOKEN"]).
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Accounts Receivable <billing@example.com>")
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
# SMTP goes through Django's backend with one addition: a failure after the message was handed
# over (the final "." of DATA) is told apart, so it is never resent blindly.
SMTP_EMAIL_BACKEND = "dunning_site.notifications.smtp.EmailBackend"
if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
    EMAIL_BACKEND = SMTP_EMAIL_BACKEND
else:
    EMAIL_BACKEND = env.str(
        "EMAIL_BACKEND",
        default="django.core.mail.backends.filebased.EmailBackend" if DEBUG else SMTP_EMAIL_BACKEND,
    )
# Seconds an SMTP server (or an ESP's API) may stay silent before the attempt gives up: well inside
# the `messages` queue's job timeout (RQ_QUEUES), so a provider that never answers cannot leave a
# message `sending` until the job is killed.
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=20)
EMAIL_FILE_PATH = env.path("EMAIL_FILE_PATH", default=BASE_DIR / "var" / "sent-emails")
ANYMAIL = {
    key.removeprefix("ANYMAIL_"): value for key, value in env.ENVIRON.items() if key.startswith("ANYMAIL_") and value
}
ANYMAIL.setdefault("REQUESTS_TIMEOUT", EMAIL_TIMEOUT)

# Dunning engine.
DUNNING_TICK_BATCH_SIZE = env.int("DUNNING_TICK_BATCH_SIZE", default=100)
# A message still `queued` this long after it was due is re-enqueued by the sweeper.
DUNNING_SWEEP_AFTER_SECONDS = env.int("DUNNING_SWEEP_AFTER_SECONDS", default=300)
# Local hour at which a step falls due on its day, in the customer's own time zone.
DUNNING_SEND_HOUR = env.int("DUNNING_SEND_HOUR", default=9)
# Public base address of the product, for links in messages.
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

# The health endpoint (/health/, for an operator's monitor). With a token set, only requests carrying
# it are answered: the report holds no customer data, but says when the engine is down.
HEALTH_CHECK_TOKEN = env.str("HEALTH_CHECK_TOKEN", default="")
# The tick runs every minute: older than this, the cron or the `default` workers have stopped.
HEALTH_TICK_MAX_AGE_SECONDS = env.int("HEALTH_TICK_MAX_AGE_SECONDS", default=300)
# A due message still queued DUNNING_SWEEP_AFTER_SECONDS plus this long: nothing is delivering.
HEALTH_MESSAGE_MARGIN_SECONDS = env.int("HEALTH_MESSAGE_MARGIN_SECONDS", default=600)

# Production hardening: on unless DEBUG; `manage.py check --deploy` is clean with DEBUG=false.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^health/$"]  # a monitor on the same host may ask gunicorn over plain HTTP
# Trusted only when set (e.g. "HTTP_X_FORWARDED_PROTO,https"): without a proxy that overwrites the
# header, any client could claim https. Gunicorn already trusts X-Forwarded-Proto from the addresses
# in its FORWARDED_ALLOW_IPS (default: this machine), which covers a proxy on the same host.
SECURE_PROXY_SSL_HEADER = tuple(env.list("SECURE_PROXY_SSL_HEADER", default=[])) or None
if SECURE_PROXY_SSL_HEADER and len(SECURE_PROXY_SSL_HEADER) != 2:
    raise ImproperlyConfigured(
        "SECURE_PROXY_SSL_HEADER must be a header and its value, comma-separated: HTTP_X_FORWARDED_PROTO,https"
    )
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "permission_denied_without_traceback": {"()": "dunning_site.lib.log_filters.PermissionDeniedWithoutTraceback"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "fontTools": {"level": "WARNING"},  # font subsetting logs every glyph at INFO, per letter
        # Django's own console handler (DEBUG only) printed every django.* line a second time after
        # ours; its mail_admins handler mails nobody, ADMINS being empty. The root's console says it once.
        "django": {"handlers": [], "level": "INFO"},
        # A 403 is logged as its one-line warning, without the PermissionDenied's traceback.
        "django.request": {"filters": ["permission_denied_without_traceback"]},
    },
}

# Who the messages come from, as the templates sign them.
DUNNING_SENDER_NAME = env.str("DUNNING_SENDER_NAME", default="The billing team")
DUNNING_SENDER_COMPANY = env.str("DUNNING_SENDER_COMPANY", default="Example SaaS Inc.")
# Printed under the company name on letters: one line per row, "\n" between rows in the environment.
DUNNING_SENDER_ADDRESS = env.str(
    "DUNNING_SENDER_ADDRESS", default="1 Example Street\\n75001 Paris\\nFrance", multiline=True
)
DUNNING_SENDER_PHONE = env.str("DUNNING_SENDER_PHONE", default="")
# The brand of customers' emails (their HTML part) and pages: the name shown (the sender's company unless
# set), a logo at a public https address (none: the name in text), two colours (#rrggbb: the header
# band, and the text on it; the defaults pass WCAG AA contrast), and the support contact shown in
# every footer (the From address and the sender's phone unless set).
BRAND_NAME = env.str("BRAND_NAME", default="") or DUNNING_SENDER_COMPANY
BRAND_LOGO_URL = env.str("BRAND_LOGO_URL", default="")
BRAND_PRIMARY_COLOUR = env.str("BRAND_PRIMARY_COLOUR", default="#1f4e8c")
BRAND_TEXT_ON_PRIMARY_COLOUR = env.str("BRAND_TEXT_ON_PRIMARY_COLOUR", default="#ffffff")
BRAND_SUPPORT_EMAIL = env.str("BRAND_SUPPORT_EMAIL", default="")
BRAND_SUPPORT_PHONE = env.str("BRAND_SUPPORT_PHONE", default="") or DUNNING_SENDER_PHONE
BRAND_SUPPORT_URL = env.str("BRAND_SUPPORT_URL", default="")
for _name in ("BRAND_PRIMARY_COLOUR", "BRAND_TEXT_ON_PRIMARY_COLOUR"):
    # The colours go into the emails' style attributes: a colour and nothing else.
    if not re.fullmatch(r"#(?:[0-9a-fA-F]{3}){1,2}", vars()[_name]):
        raise ImproperlyConfigured(f"{_name} must be a colour like #1f4e8c, not {vars()[_name]!r}")
IMPORT_EXPORT_TMP_STORAGE_CLASS = "import_export.tmp_storages.MediaStorage"  # shared by web processes, unlike /tmp
