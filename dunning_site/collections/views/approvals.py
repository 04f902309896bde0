"""The managers' approvals queue."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from dunning_site.collections import services
from dunning_site.collections.models import Approval


@login_required
@permission_required("collections.decide_approval", raise_exception=True)
def approval_list(request: HttpRequest) -> HttpResponse:
    """Managers' queue: every step waiting for a decision, with the case's context."""
    approvals = (
        Approval.objects.filter(status=Approval.Status.PENDING)
        .select_related("case__customer", "case__policy", "case__current_step", "step", "requested_by")
        .order_by("requested_at")
    )
    return render(request, "collections/approval_list.html", {"approvals": approvals, "today": timezone.localdate()})


@login_required
@permission_required("collections.decide_approval", raise_exception=True)
@require_POST
def approval_decide(request: HttpRequest, approval_id: int) -> HttpResponse:
    approval = get_object_or_404(Approval, pk=approval_id)
    approve = request.POST.get("decision") == "approve"
    try:
        services.approval_decide(
            approval=approval, approve=approve, user=request.user, note=request.POST.get("note", "")
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        verb = "Approved" if approve else "Rejected"
        messages.success(request, f"{verb}: {approval.step} for {approval.case.customer}.")
    return redirect("collections:approval_list")
