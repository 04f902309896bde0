import csv
from email.utils import parseaddr

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from dunning_site.collections import portal, selectors, services
from dunning_site.collections.billing import SignatureError, billing_event_receive
from dunning_site.collections.filters import CaseFilter
from dunning_site.collections.models import Approval, Case
from dunning_site.lib.money import from_minor_units

CASES_PER_PAGE = 50
WORKLIST_SHOWN = 25  # per section; the count says how many there are in all


@csrf_exempt  # Stripe signs its requests; there is no session or CSRF token to check
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    """Verify, store once, answer at once; a job does the work (Stripe wants a 2xx quickly)."""
    try:
        stored = billing_event_receive(payload=request.body, signature=request.headers.get("Stripe-Signature", ""))
    except SignatureError:
        return HttpResponseBadRequest("Invalid Stripe signature.")
    return HttpResponse("stored" if stored else "already stored", content_type="text/plain")


# ---------------------------------------------------------------------------------------------
# The customer portal: no login, the signed link is the key. Pages that refuse a link show who to
# ask for a new one and nothing about the customer: whoever holds a bad link may not be them.


def _sender() -> dict:
    return {
        "sender_company": settings.DUNNING_SENDER_COMPANY,
        "sender_email": parseaddr(settings.DEFAULT_FROM_EMAIL)[1],
        "sender_phone": settings.DUNNING_SENDER_PHONE,
        "link_days": portal.CARD_UPDATE_LINK_MAX_AGE.days,
    }


def _link_refused(request: HttpRequest, error: portal.PortalLinkInvalid) -> HttpResponse:
    expired = isinstance(error, portal.PortalLinkExpired)
    context = _sender() | {"expired": expired}
    return render(request, "portal/link_invalid.html", context, status=410 if expired else 404)


@never_cache  # the token is in the URL: no shared cache may keep the page or the redirect
@require_GET
def portal_card(request: HttpRequest, token: str) -> HttpResponse:
    """The card-update link from a message: a fresh checkout session each time it is opened."""
    try:
        customer = portal.read_card_update_token(token)
    except portal.PortalLinkInvalid as error:
        return _link_refused(request, error)
    try:
        url = portal.card_update_session_url(customer=customer, token=token)
    except portal.CardUpdateUnavailable as error:
        context = _sender() | {"temporary": error.temporary}
        return render(request, "portal/card_unavailable.html", context, status=503 if error.temporary else 200)
    return redirect(url)


@never_cache
@require_GET
def portal_card_done(request: HttpRequest, token: str) -> HttpResponse:
    """Where the billing system sends the customer back; in the sandbox, the test-card picker."""
    max_age = portal.CARD_UPDATE_LINK_MAX_AGE + portal.CHECKOUT_SESSION_LIFETIME
    try:
        portal.read_card_update_token(token, max_age=max_age)
    except portal.PortalLinkInvalid as error:
        return _link_refused(request, error)
    if request.GET.get("sandbox") and portal.gateway_is_sandbox():
        return _sandbox_page(request, token)
    context = _sender() | {"updated": bool(request.GET.get("updated")), "retry_url": _card_path(token)}
    return render(request, "portal/card_done.html", context)


@never_cache
@require_POST
def portal_card_sandbox(request: HttpRequest, token: str) -> HttpResponse:
    """`make run` without Stripe: the customer picks a test card; retries follow as with Stripe."""
    if not portal.gateway_is_sandbox():
        raise Http404("The sandbox is off: a Stripe key is configured.")
    try:
        customer = portal.read_card_update_token(token)
    except portal.PortalLinkInvalid as error:
        return _link_refused(request, error)
    payment_method = request.POST.get("payment_method", "")
    if payment_method not in portal.SANDBOX_CARDS:
        return _sandbox_page(request, token, error=portal.CHOOSE_A_CARD, status=400)
    portal.sandbox_card_change(customer=customer, payment_method=payment_method)
    return redirect(reverse("collections:portal_card_done", args=[token]) + "?updated=1")


def _sandbox_page(request: HttpRequest, token: str, *, error: str = "", status: int = 200) -> HttpResponse:
    context = _sender() | {
        "cards": portal.SANDBOX_CARDS.items(),
        "action": reverse("collections:portal_card_sandbox", args=[token]),
        "error": error,
    }
    return render(request, "portal/card_sandbox.html", context, status=status)


def _card_path(token: str) -> str:
    return reverse("collections:portal_card", args=[token])


@login_required
@permission_required("collections.view_case", raise_exception=True)
def worklist(request: HttpRequest) -> HttpResponse:
    """The home page: what needs me now."""
    sections = {
        name: {"items": list(queryset[:WORKLIST_SHOWN]), "count": queryset.count()}
        for name, queryset in selectors.worklist(user=request.user).items()
    }
    return render(request, "collections/worklist.html", {"sections": sections})


@login_required
@permission_required("collections.view_case", raise_exception=True)
def case_list(request: HttpRequest) -> HttpResponse:
    # Without filters, the cases being worked: resolved and closed ones are one click away.
    filterset = CaseFilter(request.GET or {"status": "active"}, queryset=selectors.cases_for_list())
    cases = filterset.qs if filterset.is_bound and filterset.is_valid() else filterset.queryset
    if filterset.is_bound and not filterset.is_valid():
        cases = cases.none()
    page = Paginator(cases.order_by(*cases.query.order_by or ["-opened_at"]), CASES_PER_PAGE).get_page(
        request.GET.get("page")
    )
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "collections/case_list.html",
        {"filter": filterset, "page": page, "query": query.urlencode(), "today": timezone.localdate()},
    )


@login_required
@permission_required("collections.view_case", raise_exception=True)
def case_detail(request: HttpRequest, case_id: int) -> HttpResponse:
    try:
        case = selectors.case_detail(case_id=case_id)
    except Case.DoesNotExist:
        raise Http404("No such case.") from None
    return render(
        request,
        "collections/case_detail.html",
        {
            "case": case,
            "customer_now": timezone.now(),  # shown in the customer's zone by the template
            "today": timezone.localdate(),
            "open_invoices": [invoice for invoice in case.invoices.all() if invoice.status == "open"],
        },
    )


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


CSV_COLUMNS = [
    "case",
    "customer",
    "company",
    "email",
    "segment",
    "status",
    "currency",
    "amount_overdue",
    "days_overdue",
    "policy",
    "current_step",
    "next_step",
    "next_action_at",
    "assignee",
]


@login_required
@permission_required("collections.view_case", raise_exception=True)
def case_list_export(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered cases as CSV, amounts in major units of their currency (for spreadsheets)."""
    filterset = CaseFilter(request.GET or None, queryset=selectors.cases_for_list())
    cases = filterset.qs if filterset.is_bound and filterset.is_valid() else filterset.queryset
    today = timezone.localdate()

    class Echo:
        def write(self, value):
            return value

    writer = csv.writer(Echo())

    def rows():
        yield writer.writerow(CSV_COLUMNS)
        for case in cases.order_by("pk").iterator(chunk_size=500):
            yield writer.writerow(
                [
                    case.pk,
                    case.customer.name,
                    case.customer.company,
                    case.customer.email,
                    case.customer.segment,
                    case.status,
                    case.currency,
                    from_minor_units(case.amount_overdue, case.currency),
                    (today - case.anchor_due_on).days,
                    case.policy.name,
                    str(case.current_step or ""),
                    str(case.next_step or ""),
                    case.next_action_at.isoformat() if case.next_action_at else "",
                    case.assignee.get_username() if case.assignee else "",
                ]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="cases-{today.isoformat()}.csv"'
    return response
