"""What customers sent from the portal: their attachment, for staff only, and marking a request answered."""

from pathlib import Path

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from dunning_site.collections.customer_requests import customer_request_answer
from dunning_site.collections.models import CustomerRequest

ATTACHMENT_TYPES = {"pdf": "application/pdf", "png": "image/png", "jpg": "image/jpeg"}


@login_required
@permission_required("collections.view_case", raise_exception=True)
@require_GET
def customer_request_attachment(request: HttpRequest, request_id: int) -> FileResponse:
    """Downloaded, never shown inline: a customer's file is not trusted to render in our origin."""
    customer_request = get_object_or_404(CustomerRequest, pk=request_id)
    if not customer_request.attachment:
        raise Http404("This request has no attachment.")
    # The type is the one the portal checked the content for, kept as the stored file's extension;
    # the customer's own name for the file only lends its stem (a "x.html" is served as x.pdf).
    kind = customer_request.attachment.name.rsplit(".", 1)[-1]
    stem = Path(customer_request.attachment_name or "document").stem or "document"
    response = FileResponse(
        customer_request.attachment.open("rb"),
        as_attachment=True,
        filename=f"{stem}.{kind}",
        content_type=ATTACHMENT_TYPES.get(kind, "application/octet-stream"),
    )
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@permission_required("collections.work_case", raise_exception=True)
@require_POST
def customer_request_answer_view(request: HttpRequest, request_id: int) -> HttpResponse:
    customer_request = get_object_or_404(CustomerRequest, pk=request_id)
    try:
        customer_request_answer(request=customer_request, user=request.user)
        messages.success(request, "Marked as answered.")
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    if customer_request.case_id:
        return redirect(reverse("collections:case_detail", args=[customer_request.case_id]) + "#requests")
    return redirect("collections:worklist")
