"""The dashboard against a small book whose every figure was worked out by hand (below, in comments).

Today is Monday 16 March 2026 (the viewer is in UTC). The default period is 6 months: October 2025 to
March 2026, so it starts on 1 October 2025 and the weekly figures start on Monday 29 September 2025.
"""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from dunning_site.accounts.models import Channel, Invoice, Payment
from dunning_site.accounts.services import consent_record, payment_record
from dunning_site.accounts.tests.factories import CustomerFactory, InvoiceFactory, UserFactory
from dunning_site.collections import dashboard
from dunning_site.collections.case_core import case_open
from dunning_site.collections.ladder import case_step_perform_now, cases_open_overdue
from dunning_site.collections.models import Case, Step
from dunning_site.collections.roles import COLLECTOR, VIEWER
from dunning_site.collections.tests.factories import PolicyFactory
from dunning_site.collections.tests.views.conftest import signed_in
from dunning_site.collections.tests.views.moment import NOW
from dunning_site.collections.views.dashboard import CURRENCY_INVALID, PERIOD_INVALID
from dunning_site.notifications.models import Message
from dunning_site.notifications.services import message_tracking_record

pytestmark = pytest.mark.django_db


def moment(day: str, hour: int = 10) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour), tzinfo=dt.UTC)


def policy_of(name: str, *actions: tuple[str, str]) -> object:
    """A ladder whose days are far away, so a case starts on its first step and moves on only when
    the book performs the next one (as a collector's "send now" does)."""
    policy = PolicyFactory(name=name)
    for position, (action, channel) in enumerate(actions, start=1):
        Step.objects.create(
            policy=policy, position=position, offset_days=100 * position, action=action, channel=channel
        )
    return policy


class Book:
    """Builds the book in time order, moving the clock to each moment."""

    def __init__(self, clock):
        self.clock = clock
        self.collector = UserFactory(username="book-keeper")
        self.collector.groups.add(Group.objects.get(name=COLLECTOR))

    def at(self, when: dt.datetime) -> dt.datetime:
        self.clock.move_to(when)
        return when

    def open(self, customer, currency: str, policy, invoices: list[Invoice], when: dt.datetime) -> Case:
        for invoice in invoices:
            invoice.refresh_from_db()  # what was paid before the case opened does not enter dunning
        return case_open(customer=customer, currency=currency, policy=policy, invoices=invoices, now=self.at(when))

    def perform(self, case: Case, when: dt.datetime) -> Message | None:
        case.refresh_from_db()
        return case_step_perform_now(case=case, step=case.next_step, user=self.collector, now=self.at(when))

    def sent(self, message: Message, when: dt.datetime, *tracking: tuple[str, dt.datetime]) -> None:
        # What the transport records once the provider took the message (delivery itself is tested
        # in notifications); then the providers' tracking events, through the tracking service.
        Message.objects.filter(pk=message.pk).update(status=Message.Status.SENT, sent_at=when)
        for kind, at in tracking:
            message_tracking_record(message=message, kind=kind, at=self.at(at))

    def pay(self, invoice: Invoice, amount: int, when: dt.datetime, status: str = Payment.Status.SUCCEEDED) -> None:
        payment_record(invoice=invoice, amount=amount, at=self.at(when), status=status)


@pytest.fixture
def book(clock):
    """The hand-computed book; see the expected figures in each test."""
    b = Book(clock)
    by_email = policy_of(
        "By email",
        (Step.Action.REMINDER, Channel.EMAIL),
        (Step.Action.FINAL_NOTICE, Channel.EMAIL),
        (Step.Action.SUSPEND_SERVICE, Channel.EMAIL),
    )
    mixed = policy_of(
        "SMS then letter",
        (Step.Action.REMINDER, Channel.SMS),
        (Step.Action.FINAL_NOTICE, Channel.LETTER),
        (Step.Action.SUSPEND_SERVICE, Channel.EMAIL),
    )
    by_phone = policy_of("Call first", (Step.Action.CALL_TASK, Channel.CALL), (Step.Action.FINAL_NOTICE, Channel.EMAIL))

    # E (EUR), the cap: opened 20 Oct 2025 with Ea €100.00; Eb €60.00 is paid €20.00 on 25 Oct while
    # outside the case, joins it on 28 Oct with €40.00 left, so €140.00 entered dunning. Payments after
    # opening: €20.00 + €100.00 + €40.00 = €160.00, capped at €140.00. Resolved 4 Nov 10:00 (15 days).
    customer_e = CustomerFactory(name="Eve")
    ea = InvoiceFactory(customer=customer_e, currency="EUR", total=10_000, due_on=dt.date(2025, 10, 10))
    eb = InvoiceFactory(customer=customer_e, currency="EUR", total=6_000, due_on=dt.date(2025, 10, 15))
    case_e = b.open(customer_e, "EUR", by_email, [ea], moment("2025-10-20"))
    b.pay(eb, 2_000, moment("2025-10-25"))  # Saturday of ISO week 43: €20.00, all under the cap
    cases_open_overdue(now=b.at(moment("2025-10-28")))  # Eb joins case E
    b.pay(ea, 10_000, moment("2025-11-03", 9))  # week 45: €100.00 (€20.00 already counted: €120.00 ≤ €140.00)
    b.pay(eb, 4_000, moment("2025-11-04"))  # week 45: only €20.00 of the €40.00 fits under the cap
    case_e.refresh_from_db()
    assert (case_e.entered_amount, case_e.status) == (14_000, Case.Status.RESOLVED)

    # F (EUR), opened before the period (15 Sep 2025): in no cohort or funnel, but its payments count per
    # week (€10.00 on Tue 30 Sep, ISO week 40, the period's first week; €40.00 on 6 Oct, week 41) and its
    # resolution on 6 Oct 10:00 (21 days) is in the period. Its reminder was sent before the period.
    customer_f = CustomerFactory(name="Fay")
    f1 = InvoiceFactory(customer=customer_f, currency="EUR", total=5_000, due_on=dt.date(2025, 9, 1))
    case_f = b.open(customer_f, "EUR", by_email, [f1], moment("2025-09-15"))
    b.sent(b.perform(case_f, moment("2025-09-20", 9)), moment("2025-09-20", 9), ("delivered", moment("2025-09-20", 9)))
    b.pay(f1, 1_000, moment("2025-09-30"))
    b.pay(f1, 4_000, moment("2025-10-06"))

    # C (JPY): ¥90,000 opened 5 Dec 2025; email reminder 15 Dec 09:00, delivered, opened; paid ¥30,000 on
    # Sat 20 Dec (week 51, within 7 days of the email) and ¥60,000 on Mon 5 Jan 2026 (week 2): resolved
    # after 31 days.
    customer_c = CustomerFactory(name="Chiyo")
    c1 = InvoiceFactory(customer=customer_c, currency="JPY", total=90_000, due_on=dt.date(2025, 11, 30))
    case_c = b.open(customer_c, "JPY", by_email, [c1], moment("2025-12-05"))
    b.sent(
        b.perform(case_c, moment("2025-12-15", 9)),
        moment("2025-12-15", 9),
        ("delivered", moment("2025-12-15", 9)),
        ("opened", moment("2025-12-16", 8)),
    )
    b.pay(c1, 30_000, moment("2025-12-20"))
    b.pay(c1, 60_000, moment("2026-01-05"))

    # A (EUR): €400.00 opened 10 Jan 2026. Email reminder 15 Jan 09:00 (delivered, opened, clicked),
    # €100.00 paid Tue 20 Jan (week 4, within 7 days), a failed €300.00 attempt on 21 Jan (not money),
    # email final notice 30 Jan 09:00 (delivered), €300.00 on Tue 3 Feb (week 6, within 7 days):
    # resolved after 24 days.
    customer_a = CustomerFactory(name="Ada")
    a1 = InvoiceFactory(customer=customer_a, currency="EUR", total=40_000, due_on=dt.date(2026, 1, 1))
    case_a = b.open(customer_a, "EUR", by_email, [a1], moment("2026-01-10"))
    b.sent(
        b.perform(case_a, moment("2026-01-15", 9)),
        moment("2026-01-15", 9),
        ("delivered", moment("2026-01-15", 9)),
        ("opened", moment("2026-01-15", 12)),
        ("clicked", moment("2026-01-15", 12)),
    )
    b.pay(a1, 10_000, moment("2026-01-20"))
    b.pay(a1, 30_000, moment("2026-01-21"), status=Payment.Status.FAILED)
    b.sent(b.perform(case_a, moment("2026-01-30", 9)), moment("2026-01-30", 9), ("delivered", moment("2026-01-30", 9)))
    b.pay(a1, 30_000, moment("2026-02-03"))

    # B (EUR): €250.00 invoice, €50.00 paid on 20 Jan before the case opened (25 Jan): €200.00 entered.
    # SMS reminder 1 Feb 09:00 (delivered), letter final notice 5 Feb 09:00, service suspended 8 Feb,
    # €80.00 paid Tue 10 Feb (week 7): 9 days after the SMS (not within 7), 5 after the letter (within).
    # Still open: €120.00 left, due 15 Jan, 60 days overdue.
    customer_b = CustomerFactory(
        name="Bea", phone="+33612345678", postal_address="1 rue de la Paix\n75002 Paris\nFrance"
    )
    consent_record(customer=customer_b, channel=Channel.SMS, granted=True, source="signup")
    b1 = InvoiceFactory(customer=customer_b, currency="EUR", total=25_000, due_on=dt.date(2026, 1, 15))
    b.pay(b1, 5_000, moment("2026-01-20"))
    case_b = b.open(customer_b, "EUR", mixed, [b1], moment("2026-01-25"))
    b.sent(b.perform(case_b, moment("2026-02-01", 9)), moment("2026-02-01", 9), ("delivered", moment("2026-02-01", 9)))
    b.sent(b.perform(case_b, moment("2026-02-05", 9)), moment("2026-02-05", 9))
    assert b.perform(case_b, moment("2026-02-08", 9)) is None  # the suspension sends nothing
    b.pay(b1, 8_000, moment("2026-02-10"))

    # D (KWD): KWD 10.500 opened 10 Feb 2026; call task 20 Feb 09:00; KWD 2.250 paid Mon 2 Mar (week 10),
    # 10 days after the call. Final notice performed 10 Mar but its email is still queued (never sent).
    # KWD 8.250 left, due 1 Feb: 43 days overdue.
    customer_d = CustomerFactory(name="Dana", phone="+96550001234")
    d1 = InvoiceFactory(customer=customer_d, currency="KWD", total=10_500, due_on=dt.date(2026, 2, 1))
    case_d = b.open(customer_d, "KWD", by_phone, [d1], moment("2026-02-10"))
    call = b.perform(case_d, moment("2026-02-20", 9))
    assert call.channel == Channel.CALL
    b.sent(call, moment("2026-02-20", 9))
    b.pay(d1, 2_250, moment("2026-03-02"))
    assert b.perform(case_d, moment("2026-03-10", 9)).status == Message.Status.QUEUED

    # G (JPY): ¥5,000 opened 2 Mar 2026, nothing paid; email reminder 5 Mar 09:00 bounced. Due 14 Jan:
    # 61 days overdue.
    customer_g = CustomerFactory(name="Gen")
    g1 = InvoiceFactory(customer=customer_g, currency="JPY", total=5_000, due_on=dt.date(2026, 1, 14))
    case_g = b.open(customer_g, "JPY", by_email, [g1], moment("2026-03-02"))
    b.sent(b.perform(case_g, moment("2026-03-05", 9)), moment("2026-03-05", 9), ("bounced", moment("2026-03-05", 9)))

    # Receivables outside any case (a customer still within grace, or on no policy).
    customer_r = CustomerFactory(name="Rex")
    for due_on, total, paid, currency, status in [
        ("2026-03-06", 10_000, 2_550, "EUR", "open"),  # 10 days overdue, €74.50 left
        ("2026-02-14", 20_000, 0, "EUR", "open"),  # 30 days
        ("2026-02-13", 5_000, 0, "EUR", "open"),  # 31 days
        ("2025-12-16", 30_000, 0, "EUR", "open"),  # 90 days
        ("2025-12-15", 1_234, 0, "EUR", "open"),  # 91 days
        ("2026-03-16", 99_999, 0, "EUR", "open"),  # due today: not overdue
        ("2026-01-01", 7_777, 0, "EUR", "void"),  # void: owed by nobody
        ("2026-01-01", 8_888, 8_888, "EUR", "paid"),  # paid
        ("2026-01-15", 120_000, 0, "JPY", "open"),  # 60 days
        ("2025-11-01", 12_345, 0, "KWD", "open"),  # 135 days
    ]:
        InvoiceFactory(
            customer=customer_r,
            due_on=dt.date.fromisoformat(due_on),
            total=total,
            amount_paid=paid,
            currency=currency,
            status=status,
        )
    b.at(NOW)
    return b


# Overdue receivables today, per currency: [1–30, 31–60, 61–90, 90+] (amount, invoices)
#   EUR: 1–30: R €74.50 (10 d) + R €200.00 (30 d) = €274.50 (2); 31–60: R €50.00 (31 d) + B €120.00 (60 d)
#        = €170.00 (2); 61–90: R €300.00 (90 d) (1); 90+: R €12.34 (91 d) (1). Total €756.84 (6).
#   JPY: 31–60: R ¥120,000 (60 d) (1); 61–90: G ¥5,000 (61 d) (1). Total ¥125,000 (2).
#   KWD: 31–60: D KWD 8.250 (43 d) (1); 90+: R KWD 12.345 (135 d) (1). Total KWD 20.595 (2).
RECEIVABLES = {
    "EUR": (75_684, 6, [27_450, 17_000, 30_000, 1_234], [2, 2, 1, 1]),
    "JPY": (125_000, 2, [0, 120_000, 5_000, 0], [0, 1, 1, 0]),
    "KWD": (20_595, 2, [0, 8_250, 0, 12_345], [0, 1, 0, 1]),
}

# Cohorts (month opened): cases, entered, recovered, rate
#   Oct 2025 EUR: E: €140.00 entered, €140.00 recovered (capped from €160.00) → 100.0%
#   Dec 2025 JPY: C: ¥90,000 / ¥90,000 → 100.0%
#   Jan 2026 EUR: A + B: €400.00 + €200.00 = €600.00 entered; €400.00 + €80.00 = €480.00 → 80.0%
#                 (B's €50.00 of 20 Jan came before B opened; A's failed €300.00 is no money)
#   Feb 2026 KWD: D: KWD 2.250 / KWD 10.500 = 21.428…% → 21.4%
#   Mar 2026 JPY: G: ¥0 / ¥5,000 → 0.0%
COHORTS = [
    (dt.date(2025, 10, 1), "EUR", 1, 14_000, 14_000, Decimal("100.0")),
    (dt.date(2025, 12, 1), "JPY", 1, 90_000, 90_000, Decimal("100.0")),
    (dt.date(2026, 1, 1), "EUR", 2, 60_000, 48_000, Decimal("80.0")),
    (dt.date(2026, 2, 1), "KWD", 1, 10_500, 2_250, Decimal("21.4")),
    (dt.date(2026, 3, 1), "JPY", 1, 5_000, 0, Decimal("0.0")),
]

# Recovered per ISO week (Monday), per currency, from the capped payments:
#   EUR: W40 €10.00 (F), W41 €40.00 (F), W43 €20.00 (E), W45 €100.00 + €20.00 = €120.00 (E, capped),
#        W04 €100.00 (A), W06 €300.00 (A), W07 €80.00 (B). Total €670.00 = cohorts €140.00 + €480.00 + F €50.00.
#   JPY: W51 ¥30,000, W02 ¥60,000 (C).   KWD: W10 KWD 2.250 (D).
WEEKS = [
    (dt.date(2025, 9, 29), "EUR", 1_000, 1),
    (dt.date(2025, 10, 6), "EUR", 4_000, 1),
    (dt.date(2025, 10, 20), "EUR", 2_000, 1),
    (dt.date(2025, 11, 3), "EUR", 12_000, 2),
    (dt.date(2025, 12, 15), "JPY", 30_000, 1),
    (dt.date(2026, 1, 5), "JPY", 60_000, 1),
    (dt.date(2026, 1, 19), "EUR", 10_000, 1),
    (dt.date(2026, 2, 2), "EUR", 30_000, 1),
    (dt.date(2026, 2, 9), "EUR", 8_000, 1),
    (dt.date(2026, 3, 2), "KWD", 2_250, 1),
]

# Channels, messages sent since 1 Oct 2025 (F's email of 20 Sep is before; D's final notice never went):
#   email: A reminder (delivered, opened, clicked, paid in 5 days), A final notice (delivered, paid in 4
#          days), C reminder (delivered, opened, paid in 5 days), G reminder (bounced, nothing paid)
#          → sent 4, delivered 3, opened 2, clicked 1, paid within 7 days 3
#   SMS:   B reminder (delivered; paid 9 days later) → 1, 1, -, -, 0
#   call:  D (paid 10 days later) → 1, 0
#   letter: B final notice (paid 5 days later) → 1, 1
CHANNELS = {
    "email": (4, 3, 2, 1, 3),
    "sms": (1, 1, 0, 0, 0),
    "call": (1, 0, 0, 0, 0),
    "letter": (1, 0, 0, 0, 1),
}

# Funnel, cases opened since 1 Oct 2025: E, C, A, B, D, G = 6 (F opened in September).
#   reminded: C, A, B, D (call task), G = 5; final notice: A, B, D = 3; suspended: B = 1;
#   recovered: E, C, A = 3.
FUNNEL = dashboard.Funnel(opened=6, reminded=5, final_notice=3, suspended=1, recovered=3)

# Time to recover, cases resolved since 1 Oct 2025: E 15 days, F 21, A 24 (EUR), C 31 (JPY).
#   EUR: 3 cases, average (15 + 21 + 24) / 3 = 20.0, median 21.0; JPY: 1, 31.0, 31.0;
#   all: 4 cases, average 91 / 4 = 22.75 → 22.8, median (21 + 24) / 2 = 22.5.
TIME_TO_RECOVER = [
    ("EUR", 3, Decimal("20.0"), Decimal("21.0")),
    ("JPY", 1, Decimal("31.0"), Decimal("31.0")),
    (None, 4, Decimal("22.8"), Decimal("22.5")),
]


def test_the_figures_are_those_worked_out_by_hand(book):
    board = dashboard.dashboard(period=dashboard.period_ending_today(months=6))
    assert board.period.start == dt.datetime(2025, 10, 1, tzinfo=dt.UTC)
    assert {
        row.currency: (row.amount, row.count, row.buckets, row.bucket_counts) for row in board.receivables
    } == RECEIVABLES
    assert [(c.month, c.currency, c.cases, c.entered, c.recovered, c.rate) for c in board.cohorts] == COHORTS
    assert [(w.monday, w.currency, w.amount, w.payments) for w in board.weeks] == WEEKS
    assert {
        row.channel: (row.sent, row.delivered, row.opened, row.clicked, row.paid_within_7_days)
        for row in board.channels
    } == CHANNELS
    assert board.funnel == FUNNEL
    assert [(t.currency, t.cases, t.average_days, t.median_days) for t in board.time_to_recover] == TIME_TO_RECOVER


def test_weekly_recoveries_add_up_to_the_cohorts_and_the_case_opened_before(book):
    board = dashboard.dashboard(period=dashboard.period_ending_today(months=6))
    eur_weeks = sum(week.amount for week in board.weeks if week.currency == "EUR")
    eur_cohorts = sum(cohort.recovered for cohort in board.cohorts if cohort.currency == "EUR")
    assert eur_weeks == eur_cohorts + 5_000  # F, opened in September, recovered €50.00 in the period's weeks


def cells(page: str, table_id: str) -> list[list[str]]:
    """The table's rows as lists of cell texts (tags stripped, spaces squeezed)."""
    table = re.search(rf'<table[^>]*id="{table_id}".*?</table>', page, re.S).group(0)
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", re.search(r"<tbody>(.*?)</tbody>", table, re.S).group(1), re.S)
    return [
        [
            " ".join(re.sub(r"<[^>]+>", " ", cell).split())
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        for row in rows
    ]


def test_the_page_shows_the_figures_to_the_cent(client, viewer, book):
    response = client.get("/dashboard/")
    assert response.status_code == 200
    page = response.content.decode()
    assert cells(page, "aging-table") == [
        ["EUR", "€274.50 (2)", "€170.00 (2)", "€300.00 (1)", "€12.34 (1)", "€756.84 (6)"],
        ["JPY", "¥0 (0)", "¥120,000 (1)", "¥5,000 (1)", "¥0 (0)", "¥125,000 (2)"],
        ["KWD", "KWD0.000 (0)", "KWD8.250 (1)", "KWD0.000 (0)", "KWD12.345 (1)", "KWD20.595 (2)"],
    ]
    assert cells(page, "cohort-table") == [
        ["October 2025", "EUR", "1", "€140.00", "€140.00", "100.0%"],
        ["December 2025", "JPY", "1", "¥90,000", "¥90,000", "100.0%"],
        ["January 2026", "EUR", "2", "€600.00", "€480.00", "80.0%"],
        ["February 2026", "KWD", "1", "KWD10.500", "KWD2.250", "21.4%"],
        ["March 2026", "JPY", "1", "¥5,000", "¥0", "0.0%"],
    ]
    assert cells(page, "weekly-table-eur") == [
        ["2025-W40", "Mon 29 Sep 2025", "€10.00", "1"],
        ["2025-W41", "Mon 6 Oct 2025", "€40.00", "1"],
        ["2025-W43", "Mon 20 Oct 2025", "€20.00", "1"],
        ["2025-W45", "Mon 3 Nov 2025", "€120.00", "2"],
        ["2026-W04", "Mon 19 Jan 2026", "€100.00", "1"],
        ["2026-W06", "Mon 2 Feb 2026", "€300.00", "1"],
        ["2026-W07", "Mon 9 Feb 2026", "€80.00", "1"],
        ["Total", "€670.00", ""],
    ]
    assert cells(page, "weekly-table-jpy") == [
        ["2025-W51", "Mon 15 Dec 2025", "¥30,000", "1"],
        ["2026-W02", "Mon 5 Jan 2026", "¥60,000", "1"],
        ["Total", "¥90,000", ""],
    ]
    assert cells(page, "weekly-table-kwd") == [
        ["2026-W10", "Mon 2 Mar 2026", "KWD2.250", "1"],
        ["Total", "KWD2.250", ""],
    ]
    assert cells(page, "channel-table") == [
        ["Email", "4", "3 (75.0%)", "2 (50.0%)", "1 (25.0%)", "3 (75.0%)"],
        ["SMS", "1", "1 (100.0%)", "—", "—", "0 (0.0%)"],
        ["Phone call", "1", "—", "—", "—", "0 (0.0%)"],
        ["Letter", "1", "—", "—", "—", "1 (100.0%)"],
    ]
    assert cells(page, "funnel-table") == [
        ["Opened", "6"],
        ["Reminded", "5"],
        ["Final notice", "3"],
        ["Service suspended", "1"],
        ["Recovered (paid in full)", "3"],
    ]
    assert cells(page, "time-to-recover-table") == [
        ["EUR", "3", "20.0 days", "21.0 days"],
        ["JPY", "1", "31.0 days", "31.0 days"],
        ["All currencies", "4", "22.8 days", "22.5 days"],
    ]


def test_the_charts_are_accessible_svg_drawn_on_the_server(client, viewer, book):
    page = client.get("/dashboard/").content.decode()
    charts = re.findall(r"<svg .*?</svg>", page, re.S)
    assert len(charts) == 6  # aging, funnel, cohorts, and one weekly chart per currency
    for chart in charts:
        assert 'role="img"' in chart and "aria-labelledby=" in chart and "<title" in chart
        assert "style=" not in chart and "<script" not in chart
    aging = next(chart for chart in charts if 'id="chart-aging"' in chart)
    assert "<title>EUR, 31–60 days: €170.00 (2 invoices, 22.5%)</title>" in aging  # 17000 / 75684
    cohorts = next(chart for chart in charts if 'id="chart-cohorts"' in chart)
    assert "<title>February 2026, KWD: 21.4% recovered — KWD2.250 of KWD10.500 (1 case)</title>" in cohorts
    weekly = next(chart for chart in charts if 'id="chart-weekly-jpy"' in chart)
    assert "<title>Week 51 of 2025 (from 15 Dec): ¥30,000 recovered</title>" in weekly


def test_a_currency_filter_shows_only_that_currency(client, viewer, book):
    response = client.get("/dashboard/?months=6&currency=JPY")
    assert response.status_code == 200
    page = response.content.decode()
    assert [row[0] for row in cells(page, "aging-table")] == ["JPY"]
    assert [row[1] for row in cells(page, "cohort-table")] == ["JPY", "JPY"]
    # Funnel of C and G: both reminded, C recovered.
    assert cells(page, "funnel-table") == [
        ["Opened", "2"],
        ["Reminded", "2"],
        ["Final notice", "0"],
        ["Service suspended", "0"],
        ["Recovered (paid in full)", "1"],
    ]
    assert "weekly-table-eur" not in page and "€" not in page


def test_a_shorter_period_starts_later(book):
    board = dashboard.dashboard(period=dashboard.period_ending_today(months=3))
    # From 1 January 2026: A, B, D and G opened; the week of 29 December 2025 is the first.
    assert board.funnel.opened == 4
    assert [c.month for c in board.cohorts] == [dt.date(2026, 1, 1), dt.date(2026, 2, 1), dt.date(2026, 3, 1)]
    assert board.weeks[0] == dashboard.Week(monday=dt.date(2026, 1, 5), currency="JPY", amount=60_000, payments=1)
    assert board.period.first_week == dt.date(2025, 12, 29)


@pytest.mark.parametrize(
    ("query", "field", "error"),
    [
        ("months=5", "months", PERIOD_INVALID),
        ("months=lots", "months", PERIOD_INVALID),
        ("currency=XYZ", "currency", CURRENCY_INVALID % {"value": "XYZ"}),
        ("currency=%3Cb%3E", "currency", CURRENCY_INVALID % {"value": "<b>"}),
    ],
)
def test_bad_period_or_currency_is_explained_not_an_error(client, viewer, query, field, error):
    response = client.get(f"/dashboard/?{query}")
    assert response.status_code == 400
    assert response.context["form"].errors[field] == [error]
    page = response.content.decode()
    assert "Fix the period or the currency" in page
    assert "<b>" not in page


def test_an_empty_book_shows_a_calm_page(client, viewer):
    response = client.get("/dashboard/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Nothing is overdue." in page and "No case opened in the period." in page


def many_cases(count: int) -> None:
    """`count` cases of three currencies with a reminder sent, a payment and a tracked message each."""
    policy = policy_of("Volume", (Step.Action.REMINDER, Channel.EMAIL), (Step.Action.FINAL_NOTICE, Channel.EMAIL))
    user = UserFactory(username="volume")
    for index in range(count):
        currency = ("EUR", "JPY", "KWD")[index % 3]
        invoice = InvoiceFactory(currency=currency, total=10_000, due_on=dt.date(2026, 1, 1) + dt.timedelta(index % 40))
        case = case_open(
            customer=invoice.customer, currency=currency, policy=policy, invoices=[invoice], now=moment("2026-02-15")
        )
        message = case_step_perform_now(case=case, step=case.next_step, user=user, now=moment("2026-02-20"))
        Message.objects.filter(pk=message.pk).update(status=Message.Status.SENT, sent_at=moment("2026-02-20"))
        message_tracking_record(message=message, kind="opened", at=moment("2026-02-21"))
        payment_record(invoice=invoice, amount=1_000 + index, at=moment("2026-02-25"))


@pytest.mark.parametrize("count", [10, 100])
def test_the_page_costs_the_same_queries_for_10_or_100_cases(client, viewer, count, django_assert_num_queries):
    many_cases(count)
    with django_assert_num_queries(13):
        response = client.get("/dashboard/?months=12")
    assert response.status_code == 200
    assert f'Opened</th><td class="money">{count}</td>' in response.content.decode()


def test_months_are_the_viewers_months(client, clock):
    """A case opened at 12:00 UTC on 30 September 2025 is opened on 1 October in Auckland (UTC+13):
    in the 6-month period, in the October cohort, for a viewer there; before the period for one in UTC."""
    invoice = InvoiceFactory(currency="EUR", total=10_000, due_on=dt.date(2025, 9, 1))
    case_open(
        customer=invoice.customer,
        currency="EUR",
        policy=policy_of("Any", (Step.Action.REMINDER, Channel.EMAIL)),
        invoices=[invoice],
        now=dt.datetime(2025, 9, 30, 12, tzinfo=dt.UTC),
    )
    signed_in(client, VIEWER, "kiri", time_zone="Pacific/Auckland")
    assert cells(client.get("/dashboard/").content.decode(), "cohort-table") == [
        ["October 2025", "EUR", "1", "€100.00", "€0.00", "0.0%"]
    ]
    signed_in(client, VIEWER, "una", time_zone="UTC")
    assert "No case opened in the period." in client.get("/dashboard/").content.decode()
