"""The finance UI's forms. Amounts are typed in major units of the case's currency."""

from django import forms
from django.db.models import Q

from dunning_site.accounts.models import User
from dunning_site.collections.models import Case
from dunning_site.collections.roles import COLLECTOR, MANAGER

CHOOSE_CASES = "Tick at least one case."
PAUSE_NEEDS_A_REASON = "Say why the cases are put on hold; it goes on each timeline."


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
        choices=[(ASSIGN, "Assign to…"), (PAUSE, "Put on hold"), (RESUME, "Resume")], label="With the ticked cases"
    )
    assignee = WorkerChoiceField(queryset=case_workers(), required=False, empty_label="Nobody", label="Collector")
    reason = forms.CharField(max_length=200, required=False, label="Reason for the hold")

    def clean(self):
        data = super().clean()
        if data.get("action") == self.PAUSE and not data.get("reason", "").strip():
            self.add_error("reason", PAUSE_NEEDS_A_REASON)
        return data
