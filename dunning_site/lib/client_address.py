"""Which address a request comes from: what sign-in lockouts and reset throttles count by."""

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """REMOTE_ADDR; or, behind TRUSTED_PROXY_COUNT proxies that each append the address they saw to
    X-Forwarded-For, the address the outermost of them saw. Never an entry further left: the client
    writes those itself, and could otherwise pick a new address for every guess."""
    remote = request.META.get("REMOTE_ADDR", "")
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(forwarded) < count:
        return remote  # it did not come through the proxies: what the socket says is all there is
    return forwarded[-count]
