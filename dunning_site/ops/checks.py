"""The project's own checks for `manage.py check --deploy`: settings that would let a stranger change
data, or that leave a feature silently dead, in production.

All are errors, so `check --deploy` exits non-zero and a deployment script stops:
- the sandbox without DEBUG marks invoices paid for whoever holds a card link — never acceptable with
  real customers, and a demo server with made-up ones can silence dunning.E001;
- a webhook without its secret is either open to forgery or, where the code refuses unsigned calls
  (Anymail, Twilio, Stripe) and never sends them (the service webhook), a feature that does nothing:
  bounces not recorded, STOP replies lost, Stripe payments never seen, suspensions never told;
- without a bounded EMAIL_TIMEOUT a provider that accepts and never answers holds the delivery until
  RQ kills the job, and the message is then failed although it may have gone out;
- an email or SMS backend made for development (files, the console, memory, nowhere) accepts every
  message, so each one is marked sent while nothing reaches the customer and the ladder climbs on;
- seed_demo's logins, whose passwords are printed in the README, are a way in for anyone. Only this
  check reads the database, so it runs when asked for one: `check --deploy --database default`; when
  it cannot read the users it says so with a warning (dunning.W001), which does not stop a deployment.

One is a warning, read from the database on the same terms: no active policy (dunning.W002) means the
tick opens no case and nobody is ever dunned. A warning rather than an error: a first deployment runs
its checks before `dunning_setup` has created the Default policy.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password
from django.core.checks import CheckMessage, Error, Tags, register
from django.core.checks import Warning as CheckWarning
from django.db import DatabaseError
from django.utils.module_loading import import_string

from dunning_site.collections.models import Policy
from dunning_site.notifications.sms import ConsoleBackend, LocmemBackend, TwilioBackend
from dunning_site.notifications.tracking import anymail_webhook_secret_configured

# An SMTP send waits for several replies (greeting, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA, the final
# one), each up to EMAIL_TIMEOUT: a quarter of the job's time lets a slow server finish before RQ kills it.
EMAIL_TIMEOUT_SHARE_OF_JOB = 4

SANDBOX_LIVE = Error(
    "PAYMENTS_SANDBOX is on without DEBUG and without STRIPE_API_KEY: anyone holding a customer's card link "
    "can pick a test card, and the next tick marks that customer's invoices paid.",
    hint="Set STRIPE_API_KEY for real payments, or remove PAYMENTS_SANDBOX (payments are then 'not configured'). "
    "Only a demo server with made-up customers may run the sandbox.",
    id="dunning.E001",
)
ANYMAIL_WITHOUT_SECRET = Error(
    "Email goes through an ESP (EMAIL_BACKEND=%(backend)s) but ANYMAIL_WEBHOOK_SECRET is not set: every "
    "Anymail webhook is refused, so bounces, complaints and unsubscribes are never recorded.",
    hint="Set ANYMAIL_WEBHOOK_SECRET=<user>:<password> (random) and give the ESP the tracking webhook "
    "https://<user>:<password>@<host>/webhooks/anymail/<esp>/tracking/.",
    id="dunning.E002",
)
TWILIO_WITHOUT_TOKEN = Error(
    "SMS go through Twilio (SMS_BACKEND) but TWILIO_AUTH_TOKEN is empty: no SMS can be sent, and Twilio's "
    "delivery reports and STOP replies are refused (their signature cannot be checked).",
    hint="Set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER (or TWILIO_MESSAGING_SERVICE_SID).",
    id="dunning.E003",
)
SERVICE_WEBHOOK_WITHOUT_SECRET = Error(
    "SERVICE_WEBHOOK_URL is set but SERVICE_WEBHOOK_SECRET is empty: nothing is sent unsigned, so your "
    "product is never told to suspend or reinstate a customer.",
    hint="Set SERVICE_WEBHOOK_SECRET to a long random value, and check it in your product "
    "(collections/service_hooks.py has verify_signature to copy).",
    id="dunning.E004",
)
STRIPE_WITHOUT_WEBHOOK_SECRET = Error(
    "STRIPE_API_KEY is set but STRIPE_WEBHOOK_SECRET is empty: every Stripe event is refused, so payments "
    "made at Stripe, new cards and disputes never reach the back-office.",
    hint="Set STRIPE_WEBHOOK_SECRET to the signing secret (whsec_…) of the endpoint https://<host>/webhooks/stripe/.",
    id="dunning.E005",
)
EMAIL_TIMEOUT_UNBOUNDED = Error(
    "EMAIL_TIMEOUT is %(timeout)s: a mail server that accepts the connection and never answers holds the "
    "delivery until RQ kills the job after %(job_timeout)s s, and the message is failed although it may have gone out.",
    hint="Set EMAIL_TIMEOUT to a number of seconds above 0 and at most %(most)s (a quarter of the "
    "`messages` queue's job timeout), e.g. 20.",
    id="dunning.E006",
)

EMAIL_DELIVERS_NOTHING = Error(
    "EMAIL_BACKEND is %(backend)s without DEBUG: it %(what)s instead of sending them, yet every email is "
    "marked sent, so customers get nothing and the ladder climbs on.",
    hint="Set EMAIL_URL (smtp+tls://user:password@host:587) for plain SMTP, or EMAIL_BACKEND to an Anymail ESP "
    "(e.g. anymail.backends.postmark.EmailBackend) with its ANYMAIL_* settings.",
    id="dunning.E007",
)
SMS_DELIVER_NOTHING = Error(
    "SMS_BACKEND is %(backend)s without DEBUG: it %(what)s instead of sending them, yet every SMS is marked "
    "sent, so customers get nothing and the ladder climbs on.",
    hint="Set SMS_BACKEND=dunning_site.notifications.sms.TwilioBackend (the default without DEBUG) with "
    "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER.",
    id="dunning.E008",
)
DEMO_LOGINS = Error(
    "The demo's logins are here with their demo passwords (the user name): %(usernames)s. Anyone who has "
    "read the README can sign in.",
    hint="Delete these users, or give them strong passwords (manage.py changepassword <name>). seed_demo is "
    "for development and demo servers without real customers.",
    id="dunning.E009",
)
DEMO_LOGINS_UNCHECKED = CheckWarning(
    "Could not look for the demo's logins in the %(alias)s database: %(error)s",
    hint="Run `check --deploy --database default` once the database is reachable and migrated.",
    id="dunning.W001",
)
NO_ACTIVE_POLICY = CheckWarning(
    "The %(alias)s database has no active dunning policy: the tick opens no case, so no overdue invoice is "
    "ever dunned.",
    hint="Run `manage.py dunning_setup` to create the Default policy and its message templates, or activate a "
    "policy in the finance UI.",
    id="dunning.W002",
)

# Development backends, most specific first (the file backend is the console backend writing to files).
EMAIL_BACKENDS_DELIVERING_NOTHING = (
    ("django.core.mail.backends.filebased.EmailBackend", "writes emails to files"),
    ("django.core.mail.backends.console.EmailBackend", "prints emails on the console"),
    ("django.core.mail.backends.locmem.EmailBackend", "keeps emails in memory"),
    ("django.core.mail.backends.dummy.EmailBackend", "throws emails away"),
    ("anymail.backends.test.EmailBackend", "keeps emails in memory"),
)
SMS_BACKENDS_DELIVERING_NOTHING = (
    (ConsoleBackend, "prints SMS on the console"),
    (LocmemBackend, "keeps SMS in memory"),
)
# The logins seed_demo creates with their user name as password (collections.demo.staff_users_ensure).
DEMO_USERNAMES = ("admin", "collector", "manager", "viewer")


def _error(template: CheckMessage, **values) -> CheckMessage:
    return type(template)(
        template.msg % values if values else template.msg,
        hint=template.hint % values if values else template.hint,
        id=template.id,
    )


@register(Tags.security, deploy=True)
def payments_sandbox_check(app_configs=None, **kwargs) -> list[Error]:
    if settings.PAYMENTS_SANDBOX and not settings.DEBUG and not settings.STRIPE_API_KEY:
        return [_error(SANDBOX_LIVE)]
    return []


def _esp_backend() -> str:
    """The Anymail backend that sends email, if one does (its test backend has no webhooks)."""
    backend = settings.EMAIL_BACKEND
    if backend.startswith("anymail.backends.") and backend != "anymail.backends.test.EmailBackend":
        return backend
    return ""


def _twilio_sends_sms() -> bool:
    try:
        backend = import_string(settings.SMS_BACKEND)
    except ImportError:
        return False
    return isinstance(backend, type) and issubclass(backend, TwilioBackend)


@register(Tags.security, deploy=True)
def webhook_secrets_check(app_configs=None, **kwargs) -> list[Error]:
    errors = []
    backend = _esp_backend()
    if backend and not anymail_webhook_secret_configured():
        errors.append(_error(ANYMAIL_WITHOUT_SECRET, backend=backend))
    if _twilio_sends_sms() and not settings.TWILIO_AUTH_TOKEN:
        errors.append(_error(TWILIO_WITHOUT_TOKEN))
    if settings.SERVICE_WEBHOOK_URL and not settings.SERVICE_WEBHOOK_SECRET:
        errors.append(_error(SERVICE_WEBHOOK_WITHOUT_SECRET))
    if settings.STRIPE_API_KEY and not settings.STRIPE_WEBHOOK_SECRET:
        errors.append(_error(STRIPE_WITHOUT_WEBHOOK_SECRET))
    return errors


@register("dunning", deploy=True)
def email_timeout_check(app_configs=None, **kwargs) -> list[Error]:
    timeout = getattr(settings, "EMAIL_TIMEOUT", None)
    job_timeout = settings.RQ_QUEUES["messages"].get("DEFAULT_TIMEOUT", 180)  # RQ's own default is 180 s
    most = job_timeout / EMAIL_TIMEOUT_SHARE_OF_JOB
    if timeout is None or not 0 < timeout <= most:
        shown = "unset" if timeout is None else f"{timeout:g} s"
        return [_error(EMAIL_TIMEOUT_UNBOUNDED, timeout=shown, job_timeout=job_timeout, most=f"{most:g}")]
    return []


def _backend_class(path: str) -> type | None:
    try:
        backend = import_string(path)
    except ImportError:
        return None
    return backend if isinstance(backend, type) else None


@register("dunning", deploy=True)
def backends_deliver_check(app_configs=None, **kwargs) -> list[Error]:
    if settings.DEBUG:
        return []  # development: emails in var/sent-emails/, SMS on the console, as intended
    errors = []
    email_backend = _backend_class(settings.EMAIL_BACKEND)
    for path, what in EMAIL_BACKENDS_DELIVERING_NOTHING:
        development_backend = _backend_class(path)
        if email_backend and development_backend and issubclass(email_backend, development_backend):
            errors.append(_error(EMAIL_DELIVERS_NOTHING, backend=settings.EMAIL_BACKEND, what=what))
            break
    sms_backend = _backend_class(settings.SMS_BACKEND)
    for development_backend, what in SMS_BACKENDS_DELIVERING_NOTHING:
        if sms_backend and issubclass(sms_backend, development_backend):
            errors.append(_error(SMS_DELIVER_NOTHING, backend=settings.SMS_BACKEND, what=what))
            break
    return errors


@register(Tags.security, Tags.database, deploy=True)
def demo_logins_check(app_configs=None, databases=None, **kwargs) -> list[CheckMessage]:
    """Whatever DEBUG says: whoever deploys may have run seed_demo on this database before."""
    problems = []
    for alias in databases or ():
        try:
            users = list(
                get_user_model()
                .objects.using(alias)
                .filter(username__in=DEMO_USERNAMES, is_active=True)
                .order_by("username")
                .values_list("username", "password")
            )
        except DatabaseError as error:
            problems.append(_error(DEMO_LOGINS_UNCHECKED, alias=alias, error=" ".join(str(error).split())))
            continue
        # The hashers' own check_password, not the user's: it never rewrites a hash (no write in a check).
        known = [username for username, password in users if check_password(username, password)]
        if known:
            problems.append(_error(DEMO_LOGINS, usernames=", ".join(known)))
    return problems


@register(Tags.database, deploy=True)
def active_policy_check(app_configs=None, databases=None, **kwargs) -> list[CheckMessage]:
    problems = []
    for alias in databases or ():
        try:
            active = Policy.objects.using(alias).filter(is_active=True).exists()
        except DatabaseError:
            continue  # an unreadable database is already reported once, by demo_logins_check (W001)
        if not active:
            problems.append(_error(NO_ACTIVE_POLICY, alias=alias))
    return problems
