"""The dashboard: overdue receivables and their age, cases by stage, recovery, channels."""

from django import forms
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from dunning_site.collections import charts
from dunning_site.collections import dashboard as figures

PERIOD_INVALID = "Choose a period of 3, 6 or 12 months."
CURRENCY_INVALID = "No invoice or case is in “%(value)s”: choose a currency from the list."


class DashboardForm(forms.Form):
    months = forms.TypedChoiceField(
        label="Period",
        choices=[(months, f"Last {months} months") for months in figures.PERIOD_MONTHS],
        coerce=int,
        required=False,
        empty_value=figures.DEFAULT_MONTHS,
        initial=figures.DEFAULT_MONTHS,
        error_messages={"invalid_choice": PERIOD_INVALID},
    )
    currency = forms.ChoiceField(label="Currency", required=False, error_messages={"invalid_choice": CURRENCY_INVALID})

    def __init__(self, *args, currencies: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["currency"].choices = [("", "All currencies"), *((code, code) for code in currencies)]


@login_required
@permission_required("collections.view_case", raise_exception=True)
def dashboard(request: HttpRequest) -> HttpResponse:
    form = DashboardForm(request.GET or None, currencies=figures.currencies_in_use())
    if form.is_bound and not form.is_valid():
        return render(request, "collections/dashboard.html", {"form": form}, status=400)
    data = form.cleaned_data if form.is_bound else {}
    period = figures.period_ending_today(
        months=data.get("months") or figures.DEFAULT_MONTHS, currency=data.get("currency") or None
    )
    board = figures.dashboard(period=period)
    months = period.month_starts
    mondays = period.week_starts
    weekly_currencies = sorted({week.currency for week in board.weeks})
    cohort_currencies = sorted({cohort.currency for cohort in board.cohorts})
    context = {
        "form": form,
        "board": board,
        "period": period,
        "aging_buckets": [label for label, _fewest, _most in figures.AGING_BUCKETS],
        "aging_chart": charts.receivables_chart(board.receivables) if board.receivables else None,
        "funnel_chart": charts.funnel_chart(board.funnel),
        "cohort_chart": charts.cohort_chart(board.cohorts, months=months, currencies=cohort_currencies)
        if board.cohorts
        else None,
        "weekly": [
            {
                "currency": currency,
                "chart": charts.weekly_chart(board.weeks, mondays=mondays, currency=currency),
                "weeks": [week for week in board.weeks if week.currency == currency],
                "total": sum(week.amount for week in board.weeks if week.currency == currency),
            }
            for currency in weekly_currencies
        ],
    }
    return render(request, "collections/dashboard.html", context)
