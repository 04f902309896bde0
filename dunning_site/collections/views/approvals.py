"""The managers' approvals queue: ladder steps waiting for approval, collectors' requests (escalate now,
skip a step, write off), and payment plans outside the policy's self-serve limits."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from dunning_site.collections import approvals
from dunning_site.collections.models import Approval, Instalment
from dunning_site.lib.money import format_money


@login_required
@permission_required("collections.decide_approval", raise_exception=True)
def approval_list(request: HttpRequest) -> HttpResponse:
    """Managers' queue: every step and request waiting for a decision, with the case's context."""
    approvals = (
        Approval.objects.filter(status=Approval.Status.PENDING)
        .select_related(
            "case__customer", "case__policy", "case__current_step", "case__next_step", "step", "requested_by", "plan"
        )
        .prefetch_related(Prefetch("plan__instalments", queryset=Instalment.objects.order_by("number")))
        .order_by("requested_at")
    )
    return render(request, "collections/approval_list.html", {"approvals": approvals, "today": timezone.localdate()})


def _subject(approval: Approval) -> str:
    """What was decided, in words (the flash message after a decision)."""
    if approval.kind == Approval.Kind.ESCALATION:
        return f"escalate now to {approval.step}"
    if approval.kind == Approval.Kind.SKIP:
        return f"skip {approval.step}"
    if approval.kind == Approval.Kind.WRITE_OFF:
        return f"write off {format_money(approval.amount, approval.case.currency)}"
    if approval.kind == Approval.Kind.PLAN:
        return f"the payment plan of {format_money(approval.plan.total, approval.plan.currency)}"
    return str(approval.step)


CHOOSE_A_DECISION = "Nothing was decided: choose Approve or Reject."


@login_required
@permission_required("collections.decide_approval", raise_exception=True)
@require_POST
def approval_decide(request: HttpRequest, approval_id: int) -> HttpResponse:
    approval = get_object_or_404(Approval.objects.select_related("case__customer", "step", "plan"), pk=approval_id)
    decision = request.POST.get("decision")
    if decision not in ("approve", "reject"):  # never guess a manager's decision
        return _decided(request, CHOOSE_A_DECISION, ok=False, status=400)
    approve = decision == "approve"
    try:
        approvals.approval_decide(
            approval=approval, approve=approve, user=request.user, note=request.POST.get("note", "")
        )
    except ValidationError as error:
        return _decided(request, " ".join(error.messages), ok=False, status=409)
    verb = "Approved" if approve else "Rejected"
    return _decided(request, f"{verb}: {_subject(approval)} for {approval.case.customer}.", ok=True)


def _decided(request: HttpRequest, text: str, *, ok: bool, status: int = 200) -> HttpResponse:
    """htmx: the decided card becomes the outcome, in place; a plain post: back to the queue with a flash."""
    if request.htmx:
        context = {"text": text, "level": "success" if ok else "error"}
        return render(request, "collections/approval_list.html#decided", context, status=status)
    messages.add_message(request, messages.SUCCESS if ok else messages.ERROR, text)
    return redirect("collections:approval_list")
