"""The managers' dashboard: the figures, each read with a few database aggregates.

Every function here costs one query (time to recover: two) whatever the number of rows, and returns
plain dataclasses the view and the charts use as they are.

Definitions (the page repeats them for its readers):

- Calendar boundaries — "today", months, ISO weeks — are in the viewer's time zone (the one the
  middleware activated), like every other date in the finance UI. A case opened at 23:30 UTC on the
  last day of a month belongs to the next month for a viewer in Paris.
- The period is the current month and the `months - 1` months before it, from the first day of the
  first month. Receivables and aging are a picture of now and ignore the period.
- Amounts are never added across currencies: each figure is per currency.
- Overdue receivables: open invoices due before today with something left to pay (amount_remaining:
  the total less payments and write-offs, the figure the cases and their messages read too), whether
  or not a case holds them. Days overdue = today − due date.
- Funnel: the cases opened in the period. A case "reached" a stage when a step of that stage, or of
  a later one, was performed for it (a StepExecution row, or its current step): reminders and call
  tasks are the reminder stage, then final notice, then suspension. Payment retries are no stage.
  "Recovered" counts the cases of the same group that were resolved (paid in full).
- Recovered money: succeeded payments on a case's invoices made at or after the case opened, capped
  so a case never recovers more than what entered dunning (Case.entered_amount; an invoice that
  joined later may have been partly paid in between). The cap applies payment by payment in time
  order, so the weekly figures add up to the cohort ones.
- Recovery rate per cohort: cases grouped by the month they opened; rate = recovered ÷ entered.
- Recovered per week: the same capped payments grouped by the ISO week (Monday to Sunday) they were
  made in, from the week holding the period's first day; every case counts, even one opened before.
- Channel results: the messages of cases sent in the period, by channel. Delivered, opened and
  clicked come from the providers' tracking (a click proves an opening, an opening a delivery);
  letters and calls have no tracking. "Paid within 7 days": a succeeded payment on an invoice of a
  case the message belongs to, within 7 days (168 hours) after it was sent.
- Time to recover: cases resolved in the period, resolved_at − opened_at, in days.
"""

import dataclasses
import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection
from django.db.models import (
    Aggregate,
    Avg,
    BigIntegerField,
    Count,
    DateTimeField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce, Greatest, Least, TruncMonth, TruncWeek
from django.utils import timezone

from dunning_site.accounts.models import Channel, Invoice, Payment
from dunning_site.collections.models import Case, Step, StepExecution
from dunning_site.notifications.models import Message

PERIOD_MONTHS = (3, 6, 12)
DEFAULT_MONTHS = 6

# (label, fewest days overdue, most days overdue or None for no limit)
AGING_BUCKETS = (("1–30 days", 1, 30), ("31–60 days", 31, 60), ("61–90 days", 61, 90), ("Over 90 days", 91, None))

# Funnel stages, in order: the step actions that put a case at each stage.
STAGES = (
    ("reminded", "Reminded", (Step.Action.REMINDER, Step.Action.CALL_TASK)),
    ("final_notice", "Final notice", (Step.Action.FINAL_NOTICE,)),
    ("suspended", "Service suspended", (Step.Action.SUSPEND_SERVICE,)),
)

# The channels in the order the page lists them, and the tracking each one has.
CHANNELS = (Channel.EMAIL, Channel.SMS, Channel.CALL, Channel.LETTER)
TRACKED = {Channel.EMAIL: {"delivered", "opened", "clicked"}, Channel.SMS: {"delivered"}}
PAID_WITHIN = dt.timedelta(days=7)
MONEY = BigIntegerField()  # minor units


@dataclasses.dataclass(frozen=True)
class Period:
    months: int
    start: dt.datetime  # the first instant of the first month, in the viewer's zone
    today: dt.date  # the viewer's date
    currency: str | None = None  # None: every currency

    @property
    def first_month(self) -> dt.date:
        return self.start.date()

    @property
    def month_starts(self) -> list[dt.date]:
        return [_add_months(self.first_month, index) for index in range(self.months)]

    @property
    def first_week(self) -> dt.date:
        """The Monday of the ISO week holding the period's first day."""
        return self.first_month - dt.timedelta(days=self.first_month.weekday())

    @property
    def week_starts(self) -> list[dt.date]:
        weeks, monday = [], self.first_week
        while monday <= self.today:
            weeks.append(monday)
            monday += dt.timedelta(days=7)
        return weeks


def period_ending_today(*, months: int = DEFAULT_MONTHS, currency: str | None = None, now=None) -> Period:
    if months not in PERIOD_MONTHS:
        raise ValueError(f"months must be one of {PERIOD_MONTHS}")
    today = timezone.localdate(now or timezone.now())
    first = _add_months(today.replace(day=1), -(months - 1))
    start = dt.datetime.combine(first, dt.time(), tzinfo=timezone.get_current_timezone())
    return Period(months=months, start=start, today=today, currency=currency or None)


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _in_currency(queryset: QuerySet, period: Period, field: str = "currency") -> QuerySet:
    return queryset.filter(**{field: period.currency}) if period.currency else queryset


def rate(part: int, whole: int) -> Decimal | None:
    """part ÷ whole as a percentage with one decimal (half up), None when there is no whole."""
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def days(duration: dt.timedelta | None) -> Decimal | None:
    if duration is None:
        return None
    return (Decimal(duration.total_seconds()) / 86400).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


# ---------------------------------------------------------------------------------------------
# Which currencies there are (the filter's choices)


def currencies_in_use() -> list[str]:
    invoices = Invoice.objects.order_by().values_list("currency", flat=True)
    cases = Case.objects.order_by().values_list("currency", flat=True)
    return sorted(set(invoices.union(cases)))


# ---------------------------------------------------------------------------------------------
# Overdue receivables and their aging (now)


@dataclasses.dataclass
class Receivables:
    currency: str
    amount: int
    count: int
    buckets: list[int]  # amount per AGING_BUCKETS entry
    bucket_counts: list[int]

    @property
    def rows(self) -> list[tuple[str, int, int]]:
        labels = [label for label, _fewest, _most in AGING_BUCKETS]
        return list(zip(labels, self.buckets, self.bucket_counts, strict=True))


def overdue_receivables(*, period: Period) -> list[Receivables]:
    today = period.today
    aggregates = {"amount": Sum("amount_remaining"), "count": Count("pk")}
    for index, (_label, fewest, most) in enumerate(AGING_BUCKETS):
        # days overdue between fewest and most ⇔ due on or before today − fewest and after today − most − 1
        within = Q(due_on__lte=today - dt.timedelta(days=fewest))
        if most is not None:
            within &= Q(due_on__gte=today - dt.timedelta(days=most))
        aggregates[f"bucket_{index}"] = Sum("amount_remaining", filter=within, default=0)
        aggregates[f"bucket_count_{index}"] = Count("pk", filter=within)
    rows = (
        _in_currency(
            Invoice.objects.filter(status=Invoice.Status.OPEN, due_on__lt=today, amount_remaining__gt=0), period
        )
        .values("currency")
        .annotate(**aggregates)
        .order_by("currency")
    )
    return [
        Receivables(
            currency=row["currency"],
            amount=row["amount"],
            count=row["count"],
            buckets=[row[f"bucket_{index}"] for index in range(len(AGING_BUCKETS))],
            bucket_counts=[row[f"bucket_count_{index}"] for index in range(len(AGING_BUCKETS))],
        )
        for row in rows
    ]


# ---------------------------------------------------------------------------------------------
# Cases by stage


@dataclasses.dataclass
class Funnel:
    opened: int
    reminded: int
    final_notice: int
    suspended: int
    recovered: int

    @property
    def stages(self) -> list[tuple[str, int]]:
        return [("Opened", self.opened)] + [(label, getattr(self, key)) for key, label, _actions in STAGES]


def _reached(actions: tuple[str, ...]) -> Q:
    performed = StepExecution.objects.filter(case=OuterRef("pk"), step__action__in=actions)
    return Q(Exists(performed)) | Q(current_step__action__in=actions)


def case_funnel(*, period: Period) -> Funnel:
    aggregates = {"opened": Count("pk"), "recovered": Count("pk", filter=Q(status=Case.Status.RESOLVED))}
    for index, (key, _label, _actions) in enumerate(STAGES):
        this_or_later = tuple(action for _key, _label, actions in STAGES[index:] for action in actions)
        aggregates[key] = Count("pk", filter=_reached(this_or_later))
    return Funnel(**_in_currency(Case.objects.filter(opened_at__gte=period.start), period).aggregate(**aggregates))


# ---------------------------------------------------------------------------------------------
# Recovery: per monthly cohort, per week


def _sum_of(queryset: QuerySet) -> Coalesce:
    """A correlated SUM(amount) as a scalar subquery, 0 when there is no row."""
    total = queryset.order_by().annotate(total=Func(F("amount"), function="SUM", output_field=MONEY)).values("total")
    return Coalesce(Subquery(total), 0, output_field=MONEY)


def _recovered_payments_of_case(case_ref: str = "pk", opened_ref: str = "opened_at") -> QuerySet[Payment]:
    return Payment.objects.filter(
        status=Payment.Status.SUCCEEDED, invoice__cases=OuterRef(case_ref), at__gte=OuterRef(opened_ref)
    )


@dataclasses.dataclass
class Cohort:
    month: dt.date
    currency: str
    cases: int
    entered: int
    recovered: int

    @property
    def rate(self) -> Decimal | None:
        return rate(self.recovered, self.entered)


def recovery_by_cohort(*, period: Period) -> list[Cohort]:
    rows = (
        _in_currency(Case.objects.filter(opened_at__gte=period.start), period)
        .alias(recovered_capped=Least(_sum_of(_recovered_payments_of_case()), F("entered_amount"), output_field=MONEY))
        .annotate(month=TruncMonth("opened_at"))
        .values("month", "currency")
        .annotate(cases=Count("pk"), entered=Sum("entered_amount"), recovered=Sum("recovered_capped"))
        .order_by("month", "currency")
    )
    return [
        Cohort(
            month=timezone.localtime(row["month"]).date() if timezone.is_aware(row["month"]) else row["month"].date(),
            currency=row["currency"],
            cases=row["cases"],
            entered=row["entered"],
            recovered=row["recovered"],
        )
        for row in rows
    ]


@dataclasses.dataclass
class Week:
    monday: dt.date
    currency: str
    amount: int
    payments: int

    @property
    def iso_week(self) -> str:
        year, week, _day = self.monday.isocalendar()
        return f"{year}-W{week:02d}"


def recovered_by_week(*, period: Period) -> list[Week]:
    """One row per (case, payment): a payment on an invoice of two cases counts once for each, as it
    does in each case's cohort. The cap takes what the case's earlier payments left of its entered
    amount (earlier: by time, then by id)."""
    earlier = _recovered_payments_of_case("case_id", "case_opened_at").filter(
        Q(at__lt=OuterRef("at")) | Q(at=OuterRef("at"), pk__lt=OuterRef("pk"))
    )
    first_week = dt.datetime.combine(period.first_week, dt.time(), tzinfo=timezone.get_current_timezone())
    lines = (
        Payment.objects.filter(
            status=Payment.Status.SUCCEEDED, invoice__cases__opened_at__lte=F("at"), at__gte=first_week
        )
        .alias(
            case_id=F("invoice__cases__id"),
            case_opened_at=F("invoice__cases__opened_at"),
            case_entered=F("invoice__cases__entered_amount"),
            case_currency=F("invoice__cases__currency"),
        )
        .alias(
            capped=Greatest(
                Value(0),
                Least(F("amount"), F("case_entered") - _sum_of(earlier), output_field=MONEY),
                output_field=MONEY,
            )
        )
    )
    rows = (
        _in_currency(lines, period, "case_currency")
        .annotate(week=TruncWeek("at"), currency=F("case_currency"))
        .values("week", "currency")
        .annotate(amount=Sum("capped"), payments=Count("pk", filter=Q(capped__gt=0)))
        .order_by("week", "currency")
    )
    return [
        Week(
            monday=timezone.localtime(row["week"]).date() if timezone.is_aware(row["week"]) else row["week"].date(),
            currency=row["currency"],
            amount=row["amount"],
            payments=row["payments"],
        )
        for row in rows
        if row["amount"]  # only payments beyond the cap that week
    ]


# ---------------------------------------------------------------------------------------------
# Channels


@dataclasses.dataclass
class ChannelResult:
    channel: str
    label: str
    sent: int
    delivered: int
    opened: int
    clicked: int
    paid_within_7_days: int

    @property
    def delivered_rate(self) -> Decimal | None:
        return rate(self.delivered, self.sent)

    @property
    def opened_rate(self) -> Decimal | None:
        return rate(self.opened, self.sent)

    @property
    def clicked_rate(self) -> Decimal | None:
        return rate(self.clicked, self.sent)

    @property
    def paid_rate(self) -> Decimal | None:
        return rate(self.paid_within_7_days, self.sent)

    @property
    def tracks_delivery(self) -> bool:
        return "delivered" in TRACKED.get(self.channel, set())

    @property
    def tracks_opening(self) -> bool:
        return "opened" in TRACKED.get(self.channel, set())


def channel_results(*, period: Period) -> list[ChannelResult]:
    of_a_case = Case.messages.through.objects.filter(message=OuterRef("pk"))
    if period.currency:
        of_a_case = of_a_case.filter(case__currency=period.currency)
    seven_days_later = ExpressionWrapper(OuterRef("sent_at") + Value(PAID_WITHIN), output_field=DateTimeField())
    paid_soon = Payment.objects.filter(
        status=Payment.Status.SUCCEEDED,
        invoice__cases__messages=OuterRef("pk"),
        at__gte=OuterRef("sent_at"),
        at__lte=seven_days_later,
    )
    clicked = Q(clicked_at__isnull=False)
    opened = clicked | Q(opened_at__isnull=False)
    delivered = opened | Q(delivered_at__isnull=False)
    rows = {
        row["channel"]: row
        for row in Message.objects.filter(Exists(of_a_case), sent_at__gte=period.start)
        .values("channel")
        .annotate(
            sent=Count("pk"),
            delivered=Count("pk", filter=delivered),
            opened=Count("pk", filter=opened),
            clicked=Count("pk", filter=clicked),
            paid_within_7_days=Count("pk", filter=Q(Exists(paid_soon))),
        )
        .order_by()
    }
    empty = {"sent": 0, "delivered": 0, "opened": 0, "clicked": 0, "paid_within_7_days": 0}
    return [
        ChannelResult(
            channel=channel,
            label=Channel(channel).label,
            **{key: rows.get(channel, empty)[key] for key in empty},
        )
        for channel in CHANNELS
    ]


# ---------------------------------------------------------------------------------------------
# Time to recover


class Median(Aggregate):
    """PostgreSQL's exact median (a continuous percentile); other databases get no median."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = DurationField()


@dataclasses.dataclass
class TimeToRecover:
    currency: str | None  # None: every currency together (a count of days adds up across currencies)
    cases: int
    average_days: Decimal | None
    median_days: Decimal | None


def time_to_recover(*, period: Period) -> list[TimeToRecover]:
    """Per currency, then every currency together (last)."""
    resolved = _in_currency(
        Case.objects.filter(status=Case.Status.RESOLVED, resolved_at__gte=period.start, resolved_at__isnull=False),
        period,
    )
    duration = ExpressionWrapper(F("resolved_at") - F("opened_at"), output_field=DurationField())
    aggregates = {"cases": Count("pk"), "average": Avg(duration, output_field=DurationField())}
    if connection.vendor == "postgresql":
        aggregates["median"] = Median(duration)
    per_currency = resolved.values("currency").annotate(**aggregates).order_by("currency")
    overall = resolved.aggregate(**aggregates)
    return [
        TimeToRecover(
            currency=row.get("currency"),
            cases=row["cases"],
            average_days=days(row["average"]),
            median_days=days(row.get("median")),
        )
        for row in [*per_currency, overall]
    ]


# ---------------------------------------------------------------------------------------------
# Everything the page shows


@dataclasses.dataclass
class Dashboard:
    period: Period
    receivables: list[Receivables]
    funnel: Funnel
    cohorts: list[Cohort]
    weeks: list[Week]
    channels: list[ChannelResult]
    time_to_recover: list[TimeToRecover]


def dashboard(*, period: Period) -> Dashboard:
    return Dashboard(
        period=period,
        receivables=overdue_receivables(period=period),
        funnel=case_funnel(period=period),
        cohorts=recovery_by_cohort(period=period),
        weeks=recovered_by_week(period=period),
        channels=channel_results(period=period),
        time_to_recover=time_to_recover(period=period),
    )
