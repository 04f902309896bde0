"""The health endpoint. JSON for machines: 200 when healthy, 503 naming what is wrong."""

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from dunning_site.ops.health import health_report

TOKEN_REQUIRED = "This endpoint needs the header `Authorization: Bearer <HEALTH_CHECK_TOKEN>`."


def _token_accepted(request: HttpRequest) -> bool:
    """With HEALTH_CHECK_TOKEN set, only a monitor that sends it may ask. A header, not a query
    parameter: query strings end up in access logs."""
    token = settings.HEALTH_CHECK_TOKEN
    if not token:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme == "Bearer" and constant_time_compare(given.strip(), token)


@never_cache
@require_safe  # GET, and HEAD for monitors that only look at the status
def health(request: HttpRequest) -> JsonResponse:
    if not _token_accepted(request):
        return JsonResponse({"error": TOKEN_REQUIRED}, status=403)
    report = health_report()
    failing = [name for name, check in report.items() if not check.ok]
    body = {
        "status": "failing" if failing else "ok",
        "failing": failing,
        "checks": {name: check.as_json() for name, check in report.items()},
    }
    return JsonResponse(body, status=503 if failing else 200)
