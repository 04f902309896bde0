"""Staff sign-in beyond Django's own views: the lockout page, the throttled password reset, and
two-factor sign-in (enrolling an authenticator app, giving its code after the password)."""

import datetime as dt
from base64 import b32encode

import segno
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_cool_off
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.signals import user_login_failed
from django.contrib.auth.views import PasswordResetView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_ratelimit.decorators import ratelimit

from dunning_site.accounts.forms import CodeForm
from dunning_site.accounts.two_factor import (
    code_already_used,
    confirmed_device,
    second_factor_given,
    two_factor_required,
)

WRONG_CODE = "That code is not the one your app shows now. Type the six digits it shows, before they change."
CODE_JUST_USED = "This code was just used; wait for your app's next code."
ENROLLED = "Two-factor sign-in is on: from now on, signing in asks for a code from your app."
LOCKED_STATUS = 429


def locked_out(request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None) -> HttpResponse:
    """django-axes' lockout page (AXES_LOCKOUT_CALLABLE). The same for every username, existing or
    not; an attempt while locked starts the wait again, so "when" counts from now."""
    cool_off = get_cool_off(request) or dt.timedelta(0)
    context = {"retry_at": timezone.now() + cool_off, "minutes": round(cool_off.total_seconds() / 60)}
    return render(request, "registration/locked_out.html", context, status=LOCKED_STATUS)


# django-ratelimit calls these with (group, request); read at each request, so settings can change.
def _email_asked_for(group: str, request: HttpRequest) -> str:
    return request.POST.get("email", "").strip().lower()


def _rate_per_client_address(group: str, request: HttpRequest) -> str:
    return settings.PASSWORD_RESET_RATE_PER_IP


def _rate_per_email(group: str, request: HttpRequest) -> str:
    return settings.PASSWORD_RESET_RATE_PER_EMAIL


@ratelimit(key="ip", rate=_rate_per_client_address, method="POST", block=False)
@ratelimit(key=_email_asked_for, rate=_rate_per_email, method="POST", block=False)
def password_reset(request: HttpRequest) -> HttpResponse:
    """Django's password reset, throttled per client address and per address asked for. The
    refusal does not say whether an account uses the address."""
    if getattr(request, "limited", False):
        return render(request, "registration/password_reset_throttled.html", status=LOCKED_STATUS)
    return PasswordResetView.as_view()(request)


def _next_page(request: HttpRequest) -> str:
    wanted = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(wanted, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return wanted
    return settings.LOGIN_REDIRECT_URL


@never_cache
@sensitive_post_parameters("otp_token")
@login_required
def two_factor_verify(request: HttpRequest) -> HttpResponse:
    """The code after the password. A wrong code is a failed sign-in for the lockout (django-axes),
    like a wrong password; once locked out, the half-open session is closed. A right code already
    used (each is accepted once) is said to be so, and is no failure: whoever typed it has the app."""
    device = confirmed_device(request.user)
    if device is None:  # removed by an Admin since the password was accepted
        if two_factor_required(request.user):
            return redirect("accounts:two_factor_enrol")
        second_factor_given(request)
        return redirect(_next_page(request))
    if request.user.is_verified():
        return redirect(_next_page(request))
    credentials = {"username": request.user.get_username()}
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if not AxesProxyHandler.is_allowed(request, credentials):
            logout(request)
            return locked_out(request, None, credentials)
        token = form.cleaned_data["otp_token"]
        if code_already_used(device, token):
            form.add_error("otp_token", CODE_JUST_USED)
            return _code_page(request, form)
        if device.verify_token(token):
            otp_login(request, device)
            second_factor_given(request)
            return redirect(_next_page(request))
        user_login_failed.send(sender=__name__, credentials=credentials, request=request)
        if getattr(request, "axes_locked_out", False):
            logout(request)
            return locked_out(request, None, credentials)
        form.add_error("otp_token", WRONG_CODE)
    return _code_page(request, form)


def _code_page(request: HttpRequest, form: CodeForm) -> HttpResponse:
    return render(
        request,
        "registration/two_factor_verify.html",
        {"form": form, "next": _next_page(request)},
        status=400 if form.errors else 200,
    )


@never_cache
@sensitive_post_parameters("otp_token")
@login_required
def two_factor_enrol(request: HttpRequest) -> HttpResponse:
    """Scan the QR code with an authenticator app, then confirm with the code it shows. Only for
    someone without a confirmed device: replacing one (a lost phone) is an Admin's deletion of the
    old device in the admin, so a password alone never adds a device to an account that has one."""
    user = request.user
    if confirmed_device(user) is not None:
        if not user.is_verified():
            return redirect("accounts:two_factor_verify")
        return render(request, "registration/two_factor_enrol.html", {"enrolled": True})
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["otp_token"]):
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            TOTPDevice.objects.filter(user=user, confirmed=False).delete()
            otp_login(request, device)
            second_factor_given(request)
            messages.success(request, ENROLLED)
            return redirect(_next_page(request))
        form.add_error("otp_token", WRONG_CODE)
    context = {
        "enrolled": False,
        "form": form,
        "next": _next_page(request),
        "required": two_factor_required(user),
        "qr_code": segno.make(device.config_url, error="m").svg_inline(scale=4, title="QR code for your app"),
        "secret": b32encode(device.bin_key).decode(),
    }
    return render(request, "registration/two_factor_enrol.html", context, status=400 if form.errors else 200)
