"""The policies and their escalation ladders: everyone on the team reads them, managers edit them."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from dunning_site.collections import policies, selectors
from dunning_site.collections.models import Policy
from dunning_site.collections.policy_forms import PolicyForm, StepFormSet

SAVED = "Policy “%(name)s” saved."
NOT_SAVED = "Nothing was saved: correct the fields marked below."


@login_required
@permission_required("collections.view_policy", raise_exception=True)
def policy_list(request: HttpRequest) -> HttpResponse:
    return render(request, "collections/policy_list.html", {"policies": selectors.policies_for_list()})


@login_required
@permission_required("collections.add_policy", raise_exception=True)
def policy_new(request: HttpRequest) -> HttpResponse:
    return _edit(request, Policy())


@login_required
@permission_required("collections.view_policy", raise_exception=True)
def policy_detail(request: HttpRequest, policy_id: int) -> HttpResponse:
    """The policy and its ladder; a form for those who may change it, the same facts read-only for the rest."""
    policy = get_object_or_404(Policy.objects.select_related("contact_rules", "plan_default_step"), pk=policy_id)
    if request.user.has_perm("collections.change_policy"):
        return _edit(request, policy)
    if request.method != "GET":
        raise PermissionDenied
    return render(
        request,
        "collections/policy_detail.html",
        {"policy": policy, "title": policy.name} | _ladder(policy),
    )


def _edit(request: HttpRequest, policy: Policy) -> HttpResponse:
    """The policy's fields and its steps in one form, saved together or not at all."""
    title = policy.name or "New policy"
    in_use = selectors.steps_in_use(policy=policy) if policy.pk else {}
    with_history = selectors.steps_with_history(policy=policy) if policy.pk else set()
    ladder = _ladder(policy) if policy.pk else {}
    data = request.POST if request.method == "POST" else None
    form = PolicyForm(data, instance=policy, steps=[step for step, _, _ in ladder.get("ladder", [])])
    steps = StepFormSet(data, instance=policy, prefix="steps", in_use=in_use, with_history=with_history)
    problems: list[str] = []
    if data is not None:
        if form.is_valid() and steps.is_valid():
            try:
                saved = policies.policy_save(form=form, steps=steps, user=request.user)
            except ValidationError as error:
                problems = error.messages
            else:
                messages.success(request, SAVED % {"name": saved.name})
                return redirect("collections:policy_detail", policy_id=saved.pk)
        problems = problems or [NOT_SAVED]
    context = {
        "policy": policy,
        "title": title,
        "form": form,
        "steps": steps,
        "problems": problems,
    } | ladder
    return render(request, "collections/policy_detail.html", context, status=400 if problems else 200)


def _ladder(policy: Policy) -> dict:
    """The saved steps in order, each with how many active cases went through it last and how many
    wait for it: two counts that each add up to at most the policy's active cases."""
    counts = selectors.ladder_counts(policy=policy)
    steps = [
        (step, counts.last.get(step.pk, 0), counts.next.get(step.pk, 0))
        for step in selectors.policy_steps(policy=policy)
    ]
    return {"ladder": steps, "active_cases": counts.active}
