from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from dunning_site.collections.stripe_events import SignatureError, billing_event_receive


@csrf_exempt  # Stripe signs its requests; there is no session or CSRF token to check
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    """Verify, store once, answer at once; a job does the work (Stripe wants a 2xx quickly)."""
    try:
        stored = billing_event_receive(payload=request.body, signature=request.headers.get("Stripe-Signature", ""))
    except SignatureError:
        return HttpResponseBadRequest("Invalid Stripe signature.")
    return HttpResponse("stored" if stored else "already stored", content_type="text/plain")
