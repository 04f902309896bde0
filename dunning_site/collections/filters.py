import datetime as dt
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import django_filters
from django.db.models import Q
from django.utils import timezone

from dunning_site.accounts.models import Customer, User
from dunning_site.collections.models import Case, Policy
from dunning_site.lib.money import currency_exponent, is_known_currency


def _segments() -> list[tuple[str, str]]:
    segments = Customer.objects.order_by("segment").values_list("segment", flat=True).distinct()
    return [(segment, segment) for segment in segments]


def _currencies() -> list[tuple[str, str]]:
    return [(code, code) for code in Case.objects.order_by("currency").values_list("currency", flat=True).distinct()]


# A century: more than any invoice is overdue, well inside the dates Python can count back to.
MAX_DAYS_OVERDUE = 36_500


class CaseFilter(django_filters.FilterSet):
    """The cases list's filters, as a form; the same filtered set feeds the CSV export."""

    q = django_filters.CharFilter(method="search", label="Search")
    status = django_filters.ChoiceFilter(
        choices=[("active", "Active (open, waiting, paused)"), *Case.Status.choices],
        empty_label="Any status",
        method="with_status",
    )
    policy = django_filters.ModelChoiceFilter(queryset=Policy.objects.all(), empty_label="Any policy")
    segment = django_filters.ChoiceFilter(field_name="customer__segment", choices=_segments, empty_label="Any segment")
    currency = django_filters.ChoiceFilter(choices=_currencies, empty_label="Any currency")
    # Bounded so that any amount typed fits a bigint in minor units (at most 3 decimals: 10¹⁵ < 2⁶³).
    amount_min = django_filters.NumberFilter(method="amount", label="Amount from", max_digits=15, decimal_places=3)
    amount_max = django_filters.NumberFilter(method="amount", label="Amount to", max_digits=15, decimal_places=3)
    # Bounded so that today minus the days stays a date (a million days before today is not one).
    days_min = django_filters.NumberFilter(
        method="days", label="Days overdue from", min_value=0, max_value=MAX_DAYS_OVERDUE, decimal_places=0
    )
    days_max = django_filters.NumberFilter(
        method="days", label="Days overdue to", min_value=0, max_value=MAX_DAYS_OVERDUE, decimal_places=0
    )
    assignee = django_filters.ModelChoiceFilter(
        queryset=User.objects.filter(is_active=True).order_by("username"), empty_label="Anyone"
    )
    paused = django_filters.ChoiceFilter(
        choices=[("yes", "Paused"), ("no", "Not paused")],
        empty_label="Paused or not",
        method="is_paused",
        label="Paused",
    )
    o = django_filters.OrderingFilter(
        fields=(
            ("customer__name", "customer"),
            ("amount_overdue", "amount"),
            ("anchor_due_on", "overdue_since"),
            ("status", "status"),
            ("next_action_at", "next_action"),
            ("opened_at", "opened"),
        ),
        label="Sort",
    )

    class Meta:
        model = Case
        fields = []

    def search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        matching = (
            Q(customer__name__icontains=value)
            | Q(customer__company__icontains=value)
            | Q(customer__email__icontains=value)
            | Q(invoices__number__iexact=value)
        )
        return queryset.filter(pk__in=Case.objects.filter(matching).values("pk"))

    def amount(self, queryset, name, value: Decimal):
        """Amounts are typed in the currency chosen (2 decimals when none is); a bound finer than the
        currency's minor unit (10.5 JPY) is rounded inwards, so "from 10.5" does not take 10."""
        currency = self.form.cleaned_data.get("currency")
        exponent = currency_exponent(currency) if currency and is_known_currency(currency) else 2
        inwards = ROUND_CEILING if name == "amount_min" else ROUND_FLOOR
        minor = int(Decimal(value).scaleb(exponent).to_integral_value(rounding=inwards))
        return (
            queryset.filter(amount_overdue__gte=minor)
            if name == "amount_min"
            else queryset.filter(amount_overdue__lte=minor)
        )

    def days(self, queryset, name, value):
        day = timezone.localdate() - dt.timedelta(days=int(value))
        return (
            queryset.filter(anchor_due_on__lte=day) if name == "days_min" else queryset.filter(anchor_due_on__gte=day)
        )

    def is_paused(self, queryset, name, value):
        paused = Q(status=Case.Status.PAUSED)
        return queryset.filter(paused) if value == "yes" else queryset.exclude(paused)

    def with_status(self, queryset, name, value):
        if value == "active":
            return queryset.filter(status__in=Case.ACTIVE_STATUSES)
        return queryset.filter(status=value)
