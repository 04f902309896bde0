"""Two-factor sign-in for staff: a TOTP code from an authenticator app (django-otp), after the password.

Who must give a code is decided once, when the password is accepted, and kept in the session: a
user with a confirmed device must enter a code, a user whose role STAFF_2FA_REQUIRED names must
enrol first, everyone else goes on. Until then `TwoFactorMiddleware` lets them reach only the
sign-in, two-factor and sign-out pages, so the finance UI, the admin and every other staff page
rely on the same check. Pages cost no extra query: the answer is in the session.
"""

import time

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.contrib.auth.views import redirect_to_login
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from dunning_site.accounts.models import User

SESSION_KEY = "dunning_two_factor"
NOTHING_ASKED = "none"
CODE_ASKED = "code"
ENROLMENT_ASKED = "enrol"

# Superusers have every permission: they count as Admins wherever a role is named.
SUPERUSER_ROLE = "Admin"
# What a signed-in user may reach before giving their code (or enrolling).
OPEN_BEFORE_SECOND_FACTOR = {
    "login",
    "logout",
    "admin:login",
    "admin:logout",
    "accounts:two_factor_verify",
    "accounts:two_factor_enrol",
}


def two_factor_required(user: User) -> bool:
    """Whether the user's role obliges them to sign in with a code (STAFF_2FA_REQUIRED)."""
    roles = set(settings.STAFF_2FA_REQUIRED)
    if not roles:
        return False
    if user.is_superuser and SUPERUSER_ROLE in roles:
        return True
    return user.groups.filter(name__in=roles).exists()


def confirmed_device(user: User) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()


def code_already_used(device: TOTPDevice, token: str) -> bool:
    """Whether `token` is a code the app may still show (within the device's tolerance) that was
    accepted already: django-otp accepts each 30-second code once (it keeps the last one's step in
    `last_t`), so a second browser signing in with it, or a sign-in right after enrolling, is
    refused though the code is right. That is no guess, and should not count as one."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    # `verify` leaves `drift` at the step that matched, so `t()` is that code's step.
    return totp.verify(int(token), device.tolerance) and totp.t() <= device.last_t


def second_factor_owed(request: HttpRequest) -> dict:
    """Context processor: whether the signed-in user still owes their code (or their enrolment), so
    pages show no navigation, no counts and no name until then — every link would lead back anyway."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"second_factor_owed": request.session.get(SESSION_KEY) in (CODE_ASKED, ENROLMENT_ASKED)}


def what_to_ask(user: User) -> str:
    if confirmed_device(user) is not None:
        return CODE_ASKED
    if two_factor_required(user):
        return ENROLMENT_ASKED
    return NOTHING_ASKED


@receiver(user_logged_in, dispatch_uid="dunning_two_factor_on_sign_in")
def ask_for_second_factor(sender, request: HttpRequest | None, user: User, **kwargs) -> None:
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_KEY] = what_to_ask(user)


def second_factor_given(request: HttpRequest) -> None:
    request.session[SESSION_KEY] = NOTHING_ASKED


class TwoFactorMiddleware:
    """Sends a signed-in user who still owes a code to the code page, and one who must enrol to the
    enrolment page, from any page but those in OPEN_BEFORE_SECOND_FACTOR. Installed after
    django-otp's OTPMiddleware."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        if not request.user.is_authenticated:
            return None
        asked = request.session.get(SESSION_KEY)
        if asked is None:  # a session opened before two-factor sign-in existed
            asked = request.session[SESSION_KEY] = what_to_ask(request.user)
        if asked == NOTHING_ASKED or request.resolver_match.view_name in OPEN_BEFORE_SECOND_FACTOR:
            return None
        page = "accounts:two_factor_verify" if asked == CODE_ASKED else "accounts:two_factor_enrol"
        next_page = request.get_full_path() if request.method == "GET" else reverse(settings.LOGIN_REDIRECT_URL)
        return redirect_to_login(next_page, reverse(page))
