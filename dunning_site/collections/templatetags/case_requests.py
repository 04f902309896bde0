"""Reads for the requests partial, from the case's prefetched approvals (no query of their own),
so the partial works inside the case page and on its own."""

from django import template

from dunning_site.collections.models import Approval, Case

register = template.Library()


@register.filter
def pending_requests(case: Case) -> list[Approval]:
    """The collectors' requests on this case still waiting for a manager (not the ladder's own steps)."""
    return [
        approval
        for approval in case.approvals.all()
        if approval.status == Approval.Status.PENDING and approval.kind != Approval.Kind.STEP
    ]


@register.filter
def request_kinds(approvals: list[Approval]) -> set[str]:
    return {approval.kind for approval in approvals}
