"""The finance UI's forms. Amounts are typed in major units of the case's currency."""

import datetime as dt

from django import forms
from django.db.models import Q
from django.utils import timezone

from dunning_site.accounts import services as account_services
from dunning_site.accounts.models import Invoice, Payment, User
from dunning_site.collections import approvals, case_core, promises
from dunning_site.collections.models import PLAN_INSTALMENTS_MAX, Case, PaymentPlan
from dunning_site.collections.plans import PlanTerms
from dunning_site.collections.roles import COLLECTOR, MANAGER
from dunning_site.lib.money import format_money, from_minor_units, to_minor_units
from dunning_site.notifications import services as notification_services
from dunning_site.notifications.models import Message
from dunning_site.notifications.rendering import template_errors

CHOOSE_CASES = "Tick at least one case."
CHOOSE_AN_ACTION = "Choose what to do with the ticked cases."
PAUSE_NEEDS_A_REASON = "Say why the cases are put on hold; it goes on each timeline."
HOLD_UNTIL_IN_PAST = "Choose a day after today, or leave it empty to hold the case until it is resumed."


def hold_end(until: dt.date | None) -> dt.datetime | None:
    """A hold's last day as typed (in the viewer's zone) as the moment it ends: the start of that day."""
    return dt.datetime.combine(until, dt.time(), tzinfo=timezone.get_current_timezone()) if until else None


def check_hold_until(form: forms.Form, until: dt.date | None) -> None:
    """A hold's end: after today, within the services' horizon, or none (until resumed)."""
    if until is None:
        return
    if until <= timezone.localdate():
        form.add_error("until", HOLD_UNTIL_IN_PAST)
    elif problem := case_core.hold_problem(until=hold_end(until), now=timezone.now()):
        form.add_error("until", problem)


def case_workers():
    """The people cases can be given to: collectors and managers who can sign in."""
    return (
        User.objects.filter(is_active=True)
        .filter(Q(groups__name__in=[COLLECTOR, MANAGER]) | Q(is_superuser=True))
        .distinct()
        .order_by("first_name", "last_name", "username")
    )


class WorkerChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, user: User) -> str:
        return user.get_full_name() or user.get_username()


class BulkCaseForm(forms.Form):
    """One action on the cases ticked in the list."""

    ASSIGN, PAUSE, RESUME = "assign", "pause", "resume"

    cases = forms.ModelMultipleChoiceField(
        queryset=Case.objects.all(), error_messages={"required": CHOOSE_CASES}, widget=forms.MultipleHiddenInput
    )
    action = forms.ChoiceField(
        choices=[("", "Choose…"), (ASSIGN, "Assign to…"), (PAUSE, "Put on hold"), (RESUME, "Resume")],
        label="With the ticked cases",
        error_messages={"required": CHOOSE_AN_ACTION},
    )
    assignee = WorkerChoiceField(queryset=case_workers(), required=False, empty_label="Nobody", label="Collector")
    reason = forms.CharField(max_length=200, required=False, label="Reason for the hold")
    until = forms.DateField(
        required=False,
        label="On hold until",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=f"At most {case_core.HOLD_HORIZON.days} days ahead; empty: until someone resumes them.",
    )

    def clean(self):
        data = super().clean()
        if data.get("action") == self.PAUSE:
            if not data.get("reason", "").strip():
                self.add_error("reason", PAUSE_NEEDS_A_REASON)
            check_hold_until(self, data.get("until"))
        return data


# ---------------------------------------------------------------------------------------------
# The case page: one form per action (views/case_actions.py)

PROMISE_NEEDS_DATE = "Say by when they promised to pay."
PROMISE_NEEDS_AMOUNT = "Say how much they promised to pay."
DISPUTE_NEEDS_A_REASON = "Say what the customer disputes; it goes on the timeline."
HOLD_NEEDS_A_REASON = "Say why the case is put on hold; it goes on the timeline."
AMOUNT_NOT_POSITIVE = "Enter an amount above zero."
PAID_IN_FUTURE = account_services.PAID_IN_FUTURE
SAY_WHEN = "Say when to send it."
NOTE_MAX_LENGTH = 2000


def _minor_units(form: forms.Form, field: str, currency: str) -> int | None:
    """The amount typed in major units as minor units of `currency`, or a form error on the field."""
    amount = form.cleaned_data.get(field)
    if amount is None:
        return None
    try:
        minor = to_minor_units(amount, currency)
    except ValueError as error:
        form.add_error(field, str(error))
        return None
    if minor <= 0:
        form.add_error(field, AMOUNT_NOT_POSITIVE)
        return None
    return minor


class StepNowForm(forms.Form):
    """The step the collector saw as "next": if the case moved on meanwhile, nothing is done."""

    step = forms.IntegerField(widget=forms.HiddenInput)


class PromiseForm(forms.Form):
    """A promise to pay: a day from today to the policy's limit, and an amount in the case's currency
    up to what is overdue (pauses and calls)."""

    promised_on = forms.DateField(required=False, label="Promised by", widget=forms.DateInput(attrs={"type": "date"}))
    promised_amount = forms.DecimalField(required=False, label="Promised amount", help_text="Promise only.")

    def __init__(self, *args, case: Case, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.case, self.currency = case, case.currency
        self.fields["promised_amount"].label = f"Promised amount ({case.currency})"
        self.fields["promised_on"].help_text = f"Promise only; at most {case.policy.max_promise_days} days ahead."

    def clean_promise(self, data: dict) -> None:
        """Check the promise's fields; the amount in minor units lands in data["promised_minor"]."""
        if not data.get("promised_on"):
            self.add_error("promised_on", PROMISE_NEEDS_DATE)
        if data.get("promised_amount") is None and "promised_amount" not in self.errors:
            self.add_error("promised_amount", PROMISE_NEEDS_AMOUNT)
        else:
            data["promised_minor"] = _minor_units(self, "promised_amount", self.currency)
        if data.get("promised_on") and data.get("promised_minor"):
            problems = promises.promise_problems(
                case=self.case, promised_on=data["promised_on"], amount=data["promised_minor"]
            )
            for field, problem in problems.items():
                self.add_error(field, problem)
        elif data.get("promised_on") and data["promised_on"] < timezone.localdate():
            self.add_error("promised_on", promises.PROMISE_DATE_IN_PAST)


class PauseForm(PromiseForm):
    PROMISE, DISPUTE, HOLD = "promise", "dispute", "hold"

    kind = forms.ChoiceField(
        choices=[(PROMISE, "Promise to pay"), (DISPUTE, "Dispute"), (HOLD, "Manual hold")],
        widget=forms.RadioSelect,
        label="Why",
        initial=PROMISE,
    )
    until = forms.DateField(
        required=False,
        label="On hold until",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=f"Manual hold only, at most {case_core.HOLD_HORIZON.days} days ahead; "
        "empty: until someone resumes the case.",
    )
    reason = forms.CharField(
        max_length=200,
        required=False,
        label="Reason",
        help_text="For a promise: what the customer said (kept with the promise); "
        "for a dispute or a hold: why, shown on the case.",
    )

    field_order = ["kind", "promised_on", "promised_amount", "until", "reason"]

    def clean(self):
        data = super().clean()
        kind, reason = data.get("kind"), data.get("reason", "").strip()
        if kind == self.PROMISE:
            self.clean_promise(data)
        elif kind == self.DISPUTE and not reason:
            self.add_error("reason", DISPUTE_NEEDS_A_REASON)
        elif kind == self.HOLD:
            if not reason:
                self.add_error("reason", HOLD_NEEDS_A_REASON)
            check_hold_until(self, data.get("until"))
        return data

    def pause(self) -> tuple[dt.datetime | None, str]:
        """When a dispute or a manual hold ends and the reason shown on the case (a promise is
        recorded by promises.promise_record, with the reason typed as what the customer said)."""
        data, kind = self.cleaned_data, self.cleaned_data["kind"]
        reason = data["reason"].strip()
        if kind == self.DISPUTE:
            return None, f"Dispute: {reason}"
        return hold_end(data.get("until")), reason


class AssignForm(forms.Form):
    assignee = WorkerChoiceField(queryset=case_workers(), required=False, empty_label="Nobody", label="Collector")


class NoteForm(forms.Form):
    text = forms.CharField(
        max_length=NOTE_MAX_LENGTH, label="Note", widget=forms.Textarea(attrs={"rows": 3}), strip=True
    )


class CallOutcomeForm(PromiseForm):
    outcome = forms.ChoiceField(choices=Message.CallOutcome.choices, label="Outcome")
    note = forms.CharField(max_length=NOTE_MAX_LENGTH, required=False, widget=forms.Textarea(attrs={"rows": 2}))

    field_order = ["outcome", "note", "promised_on", "promised_amount"]

    def clean(self):
        data = super().clean()
        data["promised_minor"] = None
        if data.get("outcome") == Message.CallOutcome.PROMISE:
            self.clean_promise(data)
        return data


class ManualPaymentForm(forms.Form):
    """A bank transfer, cheque or other money received outside the billing system for one of the
    case's open invoices (the admin's payment form offers the same methods)."""

    invoice = forms.TypedChoiceField(coerce=int, label="Invoice")
    method = forms.ChoiceField(
        choices=[(method.value, method.label) for method in Payment.MANUAL_METHODS], label="Paid by"
    )
    amount = forms.DecimalField(label="Amount")
    paid_on = forms.DateField(label="Received on", widget=forms.DateInput(attrs={"type": "date"}))
    reference = forms.CharField(
        max_length=255, required=False, label="Reference", help_text="Bank reference, cheque number…"
    )

    def __init__(self, *args, invoices: list[Invoice], currency: str, **kwargs) -> None:
        kwargs.setdefault("initial", {}).setdefault("paid_on", timezone.localdate())
        super().__init__(*args, **kwargs)
        self.currency, self.invoices = currency, {invoice.pk: invoice for invoice in invoices}
        self.fields["invoice"].choices = [
            (invoice.pk, f"{invoice.number} · {format_money(invoice.amount_remaining, invoice.currency)} left")
            for invoice in invoices
        ]
        self.fields["amount"].label = f"Amount ({currency})"

    def clean(self):
        data = super().clean()
        invoice = self.invoices.get(data.get("invoice"))
        data["invoice_object"] = invoice
        data["minor"] = _minor_units(self, "amount", self.currency)
        if data.get("paid_on") and data["paid_on"] > timezone.localdate():
            self.add_error("paid_on", PAID_IN_FUTURE)
        elif invoice and data.get("paid_on") and data["paid_on"] < invoice.issued_on:
            self.add_error(
                "paid_on",
                account_services.PAID_BEFORE_ISSUED
                % {"number": invoice.number, "issued_on": invoice.issued_on.isoformat()},
            )
        if invoice and data["minor"] and data["minor"] > invoice.amount_remaining:
            self.add_error(
                "amount",
                account_services.OVERPAYMENT
                % {
                    "amount": format_money(data["minor"], invoice.currency),
                    "remaining": format_money(invoice.amount_remaining, invoice.currency),
                    "number": invoice.number,
                },
            )
        return data

    def received_at(self) -> dt.datetime:
        """Now for a payment received today, else noon of that day in the viewer's zone."""
        paid_on = self.cleaned_data["paid_on"]
        if paid_on == timezone.localdate():
            return timezone.now()
        return dt.datetime.combine(paid_on, dt.time(12), tzinfo=timezone.get_current_timezone())


class DraftEditForm(forms.Form):
    """A draft's words, which may use the template variables; rendered for the customer on save."""

    SAVE, NOW, LATER = "save", "now", "later"

    subject = forms.CharField(max_length=255, required=False, label="Subject")
    body = forms.CharField(label="Message", widget=forms.Textarea(attrs={"rows": 14}), strip=False)
    html_body = forms.CharField(
        label="HTML version", required=False, widget=forms.Textarea(attrs={"rows": 10}), strip=False
    )
    send_at = forms.DateTimeField(
        required=False,
        label="Send at",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="In your time zone. The contact rules still apply when it goes.",
    )
    send = forms.ChoiceField(choices=[(SAVE, "Save"), (NOW, "Send now"), (LATER, "Schedule")], required=False)

    def __init__(self, *args, with_html: bool, with_subject: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not with_html:
            del self.fields["html_body"]
        if not with_subject:
            del self.fields["subject"]

    def clean(self):
        data = super().clean()
        errors = template_errors(
            subject=data.get("subject", "") or "",
            body=data.get("body", "") or "",
            html_body=data.get("html_body") or "",
        )
        for field, problems in errors.items():
            for problem in problems:
                if field in self.fields:
                    self.add_error(field, problem)
        if (data.get("send") or self.SAVE) == self.LATER:
            if not data.get("send_at"):
                self.add_error("send_at", SAY_WHEN)
            elif problem := notification_services.schedule_problem(send_at=data["send_at"], now=timezone.now()):
                self.add_error("send_at", problem)
        return data


# ---------------------------------------------------------------------------------------------
# Collectors' requests for a manager (escalate now, skip the next step, write off)


class CaseRequestForm(forms.Form):
    """Escalate now or skip the next step; the reason is what the deciding manager reads."""

    reason = forms.CharField(
        label="Why",
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": approvals.REASON_REQUIRED},
    )


class WriteOffRequestForm(CaseRequestForm):
    """The amount is typed in major units of the case's currency ("120.50" EUR, "5000" JPY)."""

    amount = forms.CharField(
        label="Amount to write off", max_length=30, widget=forms.TextInput(attrs={"inputmode": "decimal"})
    )

    field_order = ["amount", "reason"]

    def __init__(self, *args, currency: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.currency = currency
        self.fields["amount"].label = f"Amount to write off ({currency})"

    def clean_amount(self) -> int:
        try:
            amount = to_minor_units(self.cleaned_data["amount"], self.currency)
        except ValueError as error:
            raise forms.ValidationError(str(error)) from None
        if amount <= 0:
            raise forms.ValidationError(approvals.WRITE_OFF_NOT_POSITIVE)
        return amount


# ---------------------------------------------------------------------------------------------
# A payment plan offered from the case page (views/case_plans.py)

AMOUNT_NEGATIVE = "Enter zero or more."


class PlanOfferForm(forms.Form):
    """A plan's terms as a collector types them, amounts in major units of the case's currency; the total
    starts at what is overdue. "Preview" shows the schedule, "Send" offers it (collections.plans)."""

    PREVIEW, SEND = "preview", "send"

    total = forms.DecimalField(label="Total")
    instalment_count = forms.IntegerField(min_value=1, max_value=PLAN_INSTALMENTS_MAX, label="Instalments")
    interval = forms.ChoiceField(choices=PaymentPlan.Interval.choices, initial=PaymentPlan.Interval.MONTHLY)
    first_date = forms.DateField(label="First payment on", widget=forms.DateInput(attrs={"type": "date"}))
    down_payment = forms.DecimalField(required=False, label="Down payment", help_text="Due on the first date; 0: none.")
    fee = forms.DecimalField(required=False, label="Fee", help_text="Spread over the instalments; 0: none.")
    reason = forms.CharField(
        required=False,
        max_length=NOTE_MAX_LENGTH,
        label="Why these terms",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Read by the manager when the terms are outside the policy's limits.",
    )

    def __init__(self, *args, case: Case, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.case = case
        for name in ("total", "down_payment", "fee"):
            self.fields[name].label = f"{self.fields[name].label} ({case.currency})"
        policy = case.policy
        self.fields["instalment_count"].help_text = (
            f"Up to {policy.plan_max_instalments} of at least "
            f"{format_money(policy.plan_min_instalment, case.currency)} each, the last within "
            f"{policy.plan_max_days} days; beyond that a manager approves first."
        )
        self.initial |= {
            "total": from_minor_units(case.amount_overdue, case.currency),
            "instalment_count": min(3, policy.plan_max_instalments),
            "interval": PaymentPlan.Interval.MONTHLY,
            "first_date": timezone.localdate(),
            "down_payment": 0,
            "fee": 0,
        }

    def clean(self):
        data = super().clean()
        data["total_minor"] = _minor_units(self, "total", self.case.currency)
        for name in ("down_payment", "fee"):
            data[f"{name}_minor"] = self._not_negative(name)
        return data

    def _not_negative(self, name: str) -> int:
        amount = self.cleaned_data.get(name)
        if amount is None:
            return 0
        try:
            minor = to_minor_units(amount, self.case.currency)
        except ValueError as error:
            self.add_error(name, str(error))
            return 0
        if minor < 0:
            self.add_error(name, AMOUNT_NEGATIVE)
        return minor

    def terms(self) -> PlanTerms:
        data = self.cleaned_data
        return PlanTerms(
            total=data["total_minor"],
            instalment_count=data["instalment_count"],
            interval=data["interval"],
            first_date=data["first_date"],
            down_payment=data["down_payment_minor"],
            fee=data["fee_minor"],
        )
