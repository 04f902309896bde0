"""The collectors' pages: the worklist, the cases list (and its CSV export) and the case page."""

import csv

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from dunning_site.collections import case_core, selectors
from dunning_site.collections.filters import CaseFilter
from dunning_site.collections.forms import BulkCaseForm, hold_end
from dunning_site.collections.models import Case
from dunning_site.collections.views.case_actions import case_page_context
from dunning_site.lib.money import from_minor_units

CASES_PER_PAGE = 50
WORKLIST_SHOWN = 25  # per section; the count says how many there are in all


@login_required
@permission_required("collections.view_case", raise_exception=True)
def worklist(request: HttpRequest) -> HttpResponse:
    """The home page: what needs me now."""
    counts = selectors.worklist_counts(user=request.user)
    sections = {
        name: {"items": list(queryset[:WORKLIST_SHOWN]), "count": counts[name]}
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
    context = {
        "filter": filterset,
        "page": page,
        "query": query.urlencode(),
        "today": timezone.localdate(),
        "totals": selectors.case_totals(cases),
    }
    if request.user.has_perm("collections.work_case"):
        context["bulk"] = BulkCaseForm()
    return render(request, "collections/case_list.html", context)


@login_required
@permission_required("collections.work_case", raise_exception=True)
@require_POST
def case_list_bulk(request: HttpRequest) -> HttpResponse:
    """Assign, hold or resume the ticked cases; each case is changed (and logged) on its own, so one
    that cannot be changed (resolved meanwhile, not paused) is reported and the others still are."""
    form = BulkCaseForm(request.POST)
    back = f"{reverse('collections:case_list')}?{request.POST.get('query', '')}"
    if not form.is_valid():
        for errors in form.errors.values():
            messages.error(request, " ".join(errors))
        return redirect(back)
    action, changed, refused = form.cleaned_data["action"], [], []
    for case in form.cleaned_data["cases"].select_related("customer"):
        try:
            if action == BulkCaseForm.ASSIGN:
                case_core.case_assign(case=case, assignee=form.cleaned_data["assignee"], user=request.user)
            elif action == BulkCaseForm.PAUSE:
                until = hold_end(form.cleaned_data["until"])
                case_core.case_pause(case=case, until=until, reason=form.cleaned_data["reason"], user=request.user)
            else:
                case_core.case_resume(case=case, user=request.user)
        except ValidationError as error:
            refused.append(f"{case.customer}: {' '.join(error.messages)}")
        else:
            changed.append(case)
    done = {BulkCaseForm.ASSIGN: "Assigned", BulkCaseForm.PAUSE: "Put on hold", BulkCaseForm.RESUME: "Resumed"}[action]
    if changed:
        messages.success(request, f"{done}: {len(changed)} case{'s' if len(changed) != 1 else ''}.")
    for reason in refused:
        messages.warning(request, f"Not changed — {reason}")
    return redirect(back)


@login_required
@permission_required("collections.view_case", raise_exception=True)
def case_detail(request: HttpRequest, case_id: int) -> HttpResponse:
    try:
        case = selectors.case_detail(case_id=case_id)
    except Case.DoesNotExist:
        raise Http404("No such case.") from None
    return render(request, "collections/case_detail.html", case_page_context(request, case))


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


# A spreadsheet reads a cell starting with one of these as a formula (tab and carriage return
# too, as some strip them first): a customer named "=HYPERLINK(…)" — names come from billing
# events the customer controls — would run in the collector's spreadsheet.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# Excel opens a CSV as UTF-8 (accented and CJK names intact) only when it starts with this mark.
UTF8_BOM = "\ufeff"


def spreadsheet_safe(value: object) -> object:
    """OWASP's advice against CSV injection: text that a spreadsheet would take for a formula is
    prefixed with a single quote, so it shows as text. Only text is touched: numbers (the amount
    overdue, days overdue, which a case due in the future makes negative) stay numbers, written by
    the csv module as plain digits that no spreadsheet evaluates."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


@login_required
@permission_required("collections.view_case", raise_exception=True)
def case_list_export(request: HttpRequest) -> StreamingHttpResponse:
    """The filtered cases as CSV, amounts in major units of their currency (for spreadsheets)."""
    filterset = CaseFilter(request.GET or None, queryset=selectors.cases_for_list())
    cases = filterset.qs if filterset.is_bound and filterset.is_valid() else filterset.queryset
    if filterset.is_bound and not filterset.is_valid():
        cases = cases.none()  # as the list shows: never the whole book for a filter that did not apply
    today = timezone.localdate()

    class Echo:
        def write(self, value):
            return value

    writer = csv.writer(Echo())

    def rows():
        yield UTF8_BOM + writer.writerow(CSV_COLUMNS)
        for case in cases.order_by("pk").iterator(chunk_size=500):
            yield writer.writerow(
                [
                    spreadsheet_safe(value)
                    for value in (
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
                    )
                ]
            )

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="cases-{today.isoformat()}.csv"'
    return response
