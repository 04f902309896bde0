"""Collectors' requests that need a manager (four eyes): escalate now, skip the next step, write off.

Each is a plain POST that redirects to the case page with a flash message; from htmx it answers
with the requests partial, re-rendered in place. A form with errors comes back with the errors next
to its fields (400): as a page of its own for a plain POST, as the partial for htmx (static/js/app.js
lets htmx swap a 400 into the page).
"""

from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from dunning_site.collections import approvals
from dunning_site.collections.forms import CaseRequestForm, WriteOffRequestForm
from dunning_site.collections.models import Approval, Case
from dunning_site.lib.money import format_money

PARTIAL = "collections/_case_requests.html"
PAGE = "collections/case_requests.html"


def request_forms(case: Case, *, kind: str | None = None, data=None) -> dict:
    """The partial's three forms; only the one just posted (`kind`) is bound."""
    return {
        "escalation_form": CaseRequestForm(data if kind == Approval.Kind.ESCALATION else None, prefix="escalation"),
        "skip_form": CaseRequestForm(data if kind == Approval.Kind.SKIP else None, prefix="skip"),
        "write_off_form": WriteOffRequestForm(
            data if kind == Approval.Kind.WRITE_OFF else None, prefix="write_off", currency=case.currency
        ),
    }


FORM_OF = {
    Approval.Kind.ESCALATION: "escalation_form",
    Approval.Kind.SKIP: "skip_form",
    Approval.Kind.WRITE_OFF: "write_off_form",
}


def _case(case_id: int) -> Case:
    return get_object_or_404(
        Case.objects.select_related("customer", "next_step").prefetch_related(
            Prefetch("approvals", queryset=Approval.objects.select_related("step", "requested_by", "decided_by"))
        ),
        pk=case_id,
    )


def _asked(approval: Approval) -> str:
    if approval.kind == Approval.Kind.ESCALATION:
        return f"Asked a manager to perform {approval.step} now."
    if approval.kind == Approval.Kind.SKIP:
        return f"Asked a manager to skip {approval.step}."
    return f"Asked a manager to write off {format_money(approval.amount, approval.case.currency)}."


def _handle(request: HttpRequest, case_id: int, kind: str, ask: Callable[[Case, dict], Approval]) -> HttpResponse:
    case = _case(case_id)
    forms = request_forms(case, kind=kind, data=request.POST)
    form = forms[FORM_OF[kind]]
    if form.is_valid():
        try:
            approval = ask(case, form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)  # a dict-shaped error lands next to its field
        else:
            done = _asked(approval)
            if request.htmx:
                case = _case(case_id)  # the new request in the list
                return render(request, PARTIAL, {"case": case, "request_done": done, **request_forms(case)})
            messages.success(request, done)
            return redirect("collections:case_detail", case_id=case.pk)
    context = {"case": case, **forms}
    return render(request, PARTIAL if request.htmx else PAGE, context, status=400)


@login_required
@permission_required("collections.work_case", raise_exception=True)
@require_POST
def case_escalation_request(request: HttpRequest, case_id: int) -> HttpResponse:
    """Ask a manager to perform the case's next step now instead of on its day."""
    return _handle(
        request,
        case_id,
        Approval.Kind.ESCALATION,
        lambda case, data: approvals.case_escalation_request(case=case, user=request.user, reason=data["reason"]),
    )


@login_required
@permission_required("collections.work_case", raise_exception=True)
@require_POST
def case_skip_request(request: HttpRequest, case_id: int) -> HttpResponse:
    """Ask a manager to pass over the case's next step."""
    return _handle(
        request,
        case_id,
        Approval.Kind.SKIP,
        lambda case, data: approvals.case_step_skip_request(case=case, user=request.user, reason=data["reason"]),
    )


@login_required
@permission_required("collections.work_case", raise_exception=True)
@require_POST
def case_write_off_request(request: HttpRequest, case_id: int) -> HttpResponse:
    """Ask a manager to write off part or all of what the case pursues."""
    return _handle(
        request,
        case_id,
        Approval.Kind.WRITE_OFF,
        lambda case, data: approvals.case_write_off_request(
            case=case, user=request.user, amount=data["amount"], reason=data["reason"]
        ),
    )
