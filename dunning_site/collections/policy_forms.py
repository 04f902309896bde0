"""Forms of the managers' screens for policies (with their ladder of steps) and message templates.

The admin uses the same template form, so a template is validated the same way wherever it is edited.
"""

from django import forms
from django.core.exceptions import ValidationError
from django.forms import BaseInlineFormSet, inlineformset_factory

from dunning_site.accounts.models import Channel
from dunning_site.collections.models import Policy, Step
from dunning_site.lib.admin import MoneyFieldsForm
from dunning_site.lib.money import UNKNOWN_CURRENCY, is_known_currency
from dunning_site.notifications.models import MessageTemplate
from dunning_site.notifications.rendering import template_errors

MIN_AMOUNT_NEEDS_CURRENCY = "A minimum amount needs a currency: choose one, or set the amount to 0."
MESSAGE_NEEDS_CHANNEL = "A %(action)s is a message: choose the channel it goes out on."
POSITION_TAKEN = "Step %(position)s is already taken by another step: give each step its own position."
OFFSETS_MUST_INCREASE = (
    "Day %(offset)s comes too early: step %(position)s must come after day %(previous)s of the step before it."
)
STEP_IN_USE_CHANGED = (
    "%(count)s active case(s) stand on this step or wait for it, so it cannot change now "
    "(only its position can). Add a new step instead, or change it once those cases have moved on."
)
STEP_IN_USE_DELETED = (
    "Step %(position)s (%(step)s) cannot be deleted: %(count)s active case(s) stand on it or wait for it."
)
STEP_HAS_HISTORY = (
    "Step %(position)s (%(step)s) cannot be deleted: cases have already gone through it and their "
    "history refers to it. Make a new policy instead, and deactivate this one."
)
LAST_POSITION = 999


PLAN_LIMITS = [
    "plan_max_instalments",
    "plan_min_instalment",
    "plan_max_days",
    "plan_min_down_payment_percent",
    "plan_self_serve_max_amount",
    "plan_grace_days",
]
PLAN_DEFAULT_STEP_EMPTY = "The step the case was waiting for"


class PolicyForm(MoneyFieldsForm):
    money_fields = {"min_amount": "Minimum amount"}

    class Meta:
        model = Policy
        fields = [
            "name",
            "is_active",
            "priority",
            "segment",
            "currency",
            "min_amount",
            "grace_days",
            "contact_rules",
            "retry_max_attempts",
            "retry_window_days",
            "pre_dunning_days",
            "max_promise_days",
            "max_broken_promises",
            *PLAN_LIMITS,
            "plan_default_step",
        ]
        labels = {
            "is_active": "Active",
            "retry_max_attempts": "Card retries at most",
            "retry_window_days": "Retry window (days)",
            "pre_dunning_days": "Warn before a card expires (days)",
            "max_promise_days": "Promises to pay at most (days ahead)",
            "max_broken_promises": "Broken promises before the portal stops offering one",
            "plan_max_instalments": "Plans: instalments at most",
            "plan_min_instalment": "Plans: smallest instalment (minor units)",
            "plan_max_days": "Plans: last instalment at most (days ahead)",
            "plan_min_down_payment_percent": "Plans: smallest down payment (%)",
            "plan_self_serve_max_amount": "Plans: customers choose alone up to (minor units)",
            "plan_grace_days": "Plans: grace for a missed instalment (days)",
            "plan_default_step": "Plans: a defaulted plan resumes at",
        }

    def __init__(self, data=None, *args, steps: list[Step] | None = None, **kwargs) -> None:
        """`steps`: the policy's saved steps when the caller has them already (no query for the choices)."""
        # Left out of a post (a form from before plans, a script), a plan limit keeps its value.
        missing = [name for name in PLAN_LIMITS if data is not None and name not in data]
        if missing:
            instance = kwargs.get("instance") or Policy()
            data = data.copy()
            for name in missing:
                data[name] = getattr(instance, name)
        super().__init__(data, *args, **kwargs)
        self.fields["contact_rules"].empty_label = "The safe defaults"
        # A defaulted plan resumes the case on this policy's own ladder (Policy.clean checks it too).
        default_step = self.fields["plan_default_step"]
        default_step.queryset = Step.objects.filter(policy=self.instance) if self.instance.pk else Step.objects.none()
        default_step.empty_label = PLAN_DEFAULT_STEP_EMPTY
        if steps is not None:
            default_step.choices = [("", PLAN_DEFAULT_STEP_EMPTY), *((step.pk, str(step)) for step in steps)]
        amount = self.fields["min_amount"]
        amount.required = False
        amount.help_text = "In the policy's currency, like 500.00. 0: any amount."
        if not self.instance.currency:
            self.initial["min_amount"] = 0

    def clean_currency(self) -> str:
        currency = self.cleaned_data["currency"].strip().upper()
        if currency and not is_known_currency(currency):
            raise ValidationError(UNKNOWN_CURRENCY % {"code": currency})
        return currency

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("min_amount") is None:
            cleaned["min_amount"] = 0
        if cleaned["min_amount"] and not cleaned.get("currency") and "currency" not in self.errors:
            self.add_error("currency", MIN_AMOUNT_NEEDS_CURRENCY)
        return cleaned


class StepForm(forms.ModelForm):
    # Blank is allowed so that a message step without a channel is an error, not a silent "Email".
    channel = forms.ChoiceField(choices=[("", "—"), *Channel.choices], required=False, initial=Channel.EMAIL)
    position = forms.IntegerField(min_value=1, max_value=LAST_POSITION)

    class Meta:
        model = Step
        fields = [
            "position",
            "offset_days",
            "action",
            "channel",
            "template",
            "tone",
            "requires_approval",
            "review_before_send",
        ]
        labels = {"offset_days": "Day", "review_before_send": "Review before sending"}
        help_texts = {"offset_days": "Days after the due date.", "template": ""}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["template"].empty_label = "None: a plain reminder"

    def clean(self):
        cleaned = super().clean()
        action = cleaned.get("action")
        if action == Step.Action.CALL_TASK:
            cleaned["channel"] = Channel.CALL  # the engine turns a call task into a call, whatever is chosen
        elif action in Step.MESSAGE_ACTIONS and not cleaned.get("channel"):
            self.add_error("channel", MESSAGE_NEEDS_CHANNEL % {"action": Step.Action(action).label.lower()})
        elif not cleaned.get("channel"):
            cleaned["channel"] = Channel.EMAIL  # unused by suspensions and retries; the column needs a value
        return cleaned


class BaseStepFormSet(BaseInlineFormSet):
    """The ladder: positions unique, days increasing with the position, and the steps that cases
    stand on left alone (the form refuses what the database would refuse with a ProtectedError)."""

    def __init__(self, *args, in_use: dict[int, int] | None = None, with_history: set[int] | None = None, **kwargs):
        self.in_use = in_use or {}
        self.with_history = with_history or set()
        super().__init__(*args, **kwargs)
        # One query for the template choices, not one per row.
        choices = list(self.form.base_fields["template"].choices) if self.forms else []
        for form in self.forms:
            form.fields["template"].choices = choices
            form.cases_here = self.in_use.get(form.instance.pk, 0)

    def validate_unique(self) -> None:
        """Positions are checked in clean() with a message a person can act on."""

    def clean(self) -> None:
        deleting = [form for form in self.forms if self.can_delete and self._should_delete_form(form)]
        problems = []
        for form in deleting:
            step = form.instance
            if step.pk in self.in_use:
                problems.append(
                    STEP_IN_USE_DELETED % {"position": step.position, "step": step, "count": self.in_use[step.pk]}
                )
            elif step.pk in self.with_history:
                problems.append(STEP_HAS_HISTORY % {"position": step.position, "step": step})
        kept = [
            form
            for form in self.forms
            if form not in deleting and hasattr(form, "cleaned_data") and (form.instance.pk or form.has_changed())
        ]
        for form in kept:
            count = self.in_use.get(form.instance.pk)
            if count and set(form.changed_data) - {"position"}:
                form.add_error(None, STEP_IN_USE_CHANGED % {"count": count})
        positioned = sorted(
            (form for form in kept if form.cleaned_data.get("position") is not None),
            key=lambda form: form.cleaned_data["position"],
        )
        previous = None
        for form in positioned:
            position = form.cleaned_data["position"]
            if previous is not None and previous.cleaned_data["position"] == position:
                form.add_error("position", POSITION_TAKEN % {"position": position})
                continue
            offset = form.cleaned_data.get("offset_days")
            previous_offset = previous.cleaned_data.get("offset_days") if previous is not None else None
            if offset is not None and previous_offset is not None and offset <= previous_offset:
                form.add_error(
                    "offset_days",
                    OFFSETS_MUST_INCREASE % {"offset": offset, "position": position, "previous": previous_offset},
                )
            previous = form
        if problems:
            raise ValidationError(problems)


StepFormSet = inlineformset_factory(
    Policy, Step, form=StepForm, formset=BaseStepFormSet, extra=1, can_delete=True, max_num=50, validate_max=True
)


class MessageTemplateForm(forms.ModelForm):
    """Refused when unsafe to render: errors by field, with the line."""

    class Meta:
        model = MessageTemplate
        fields = ["key", "channel", "language", "segment", "tone", "subject", "body", "html_body"]
        labels = {"html_body": "HTML body"}

    def clean(self):
        cleaned = super().clean()
        errors = template_errors(
            subject=cleaned.get("subject", ""), body=cleaned.get("body", ""), html_body=cleaned.get("html_body", "")
        )
        for field, problems in errors.items():
            for problem in problems:
                self.add_error(field, problem)
        return cleaned


class MessageTemplateFilterForm(forms.Form):
    key = forms.CharField(required=False, label="Key contains")
    language = forms.ChoiceField(required=False)

    def __init__(self, *args, languages: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["language"].choices = [("", "Any language"), *((code, code) for code in languages)]
