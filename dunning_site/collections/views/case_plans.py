"""Payment plans on the case page: a collector previews terms as a schedule, sends them to the customer
(or, outside the policy's limits, to a manager first), and cancels a plan. POST only; answered like the
other case actions (views/case_actions.py): a redirect with a flash message, or the case page's main
section for htmx."""

import dataclasses

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_POST

from dunning_site.collections import plans
from dunning_site.collections.forms import PlanOfferForm
from dunning_site.collections.models import Case, PaymentPlan
from dunning_site.collections.views.case_actions import (
    CASE_PAGE,
    WORK,
    _case,
    _done,
    _refused,
    _service_errors,
    case_page_context,
)
from dunning_site.lib.money import format_money

PLAN_OFFERED = "Plan offered: %(count)s payments, %(total)s in all. The customer accepts it on their page."
PLAN_REQUESTED = (
    "These terms are outside the policy's limits (%(problems)s): the plan waits for a manager's approval, "
    "then goes to the customer."
)
PLAN_CANCELLED = "Plan cancelled."


def _page(request: HttpRequest, case_id: int, form: PlanOfferForm, preview, status: int) -> HttpResponse:
    context = case_page_context(request, _case(case_id), plan_form=form) | {"plan_preview": preview}
    template = f"{CASE_PAGE}#case-main" if request.htmx else CASE_PAGE
    return render(request, template, context, status=status)


@login_required
@permission_required(WORK, raise_exception=True)
@require_POST
def case_plan_offer(request: HttpRequest, case_id: int) -> HttpResponse:
    """ "Preview" shows the schedule of the terms typed (nothing is stored); "Send" offers them."""
    case = get_object_or_404(Case.objects.select_related("customer", "policy"), pk=case_id)
    form = PlanOfferForm(request.POST, case=case, auto_id="plan-%s")
    if not form.is_valid():
        return _page(request, case_id, form, None, status=400)
    preview = plans.plan_preview(case=case, terms=form.terms(), by_customer=False)
    if preview.errors:
        _service_errors(form, ValidationError(preview.errors))
        return _page(request, case_id, form, None, status=400)
    if request.POST.get("action") != PlanOfferForm.SEND:
        return _page(request, case_id, form, preview, status=200)
    terms = form.terms()
    try:
        plan = plans.plan_offer(
            case=case,
            user=request.user,
            reason=form.cleaned_data["reason"],
            **dataclasses.asdict(terms),
        )
    except ValidationError as error:
        _service_errors(form, error)
        return _page(request, case_id, form, preview, status=400)
    if plan.status == PaymentPlan.Status.REQUESTED:
        text = PLAN_REQUESTED % {"problems": " ".join(preview.problems.values())}
        return _done(request, case_id, text, messages.WARNING)
    total = format_money(plan.total + plan.fee, plan.currency)
    return _done(request, case_id, PLAN_OFFERED % {"count": len(preview.schedule), "total": total})


@login_required
@permission_required(WORK, raise_exception=True)
@require_POST
def case_plan_cancel(request: HttpRequest, case_id: int, plan_id: int) -> HttpResponse:
    plan = get_object_or_404(PaymentPlan, pk=plan_id, case_id=case_id)
    try:
        plans.plan_cancel(plan=plan, user=request.user, reason=request.POST.get("reason", ""))
    except ValidationError as error:
        return _done(request, case_id, _refused(error), messages.ERROR)
    return _done(request, case_id, PLAN_CANCELLED)
