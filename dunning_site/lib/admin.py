"""Admin helpers shared by the apps."""

from django import forms
from django.contrib import admin
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.admin.utils import construct_change_message
from django.db.models import Model

from dunning_site.lib.money import format_money, from_minor_units, is_known_currency, to_minor_units


class MoneyFieldsForm(forms.ModelForm):
    """A model form whose minor-unit integer fields are typed as ordinary amounts (120.50).

    Subclasses list `money_fields = {"model_field": "Label"}` and a `currency` source: the form's
    own `currency` field, or the instance's `money_currency()` when the form has none.
    """

    money_fields: dict[str, str] = {}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        currency = self._currency_of_instance()
        for name, label in self.money_fields.items():
            if name not in self.fields:
                continue
            initial = getattr(self.instance, name, None)
            self.fields[name] = forms.DecimalField(
                label=label,
                min_value=0,
                max_digits=18,
                decimal_places=3,
                required=self.fields[name].required,
                help_text="An amount in the invoice's currency, like 120.50.",
                initial=from_minor_units(initial, currency) if initial is not None and currency else None,
            )
            if self.instance.pk and currency and initial is not None:
                self.initial[name] = from_minor_units(initial, currency)

    def _currency_of_instance(self) -> str | None:
        money_currency = getattr(self.instance, "money_currency", None)
        if callable(money_currency):
            return money_currency()
        return getattr(self.instance, "currency", None) or None

    def _currency_for_clean(self) -> str | None:
        if "currency" in self.fields:
            return self.cleaned_data.get("currency")
        return self._currency_of_instance()

    def clean(self):
        cleaned = super().clean()
        currency = self._currency_for_clean()
        for name in self.money_fields:
            value = cleaned.get(name)
            if value is None or not currency or not is_known_currency(currency):
                continue
            try:
                cleaned[name] = to_minor_units(value, currency)
            except ValueError as error:
                self.add_error(name, str(error))
        return cleaned


def requires_permission(permission: str):
    """A `has_<name>_permission` method for admin actions declared with `permissions=["<name>"]`: the
    action is offered, and runs, only for users holding `permission` ("app_label.codename")."""

    def has_permission(self, request, obj=None) -> bool:
        return request.user.has_perm(permission)

    return has_permission


def money_column(field: str, description: str):
    """A list_display column that shows a minor-unit field as money in the row's currency."""

    @admin.display(description=description, ordering=field)
    def column(self, obj) -> str:
        currency = obj.money_currency() if hasattr(obj, "money_currency") else obj.currency
        return format_money(getattr(obj, field), currency)

    return column


def admin_history_record(*, user, obj: Model, form: forms.ModelForm, formsets: list, added: bool) -> LogEntry:
    """Write what the admin writes for its own edits (who, what changed), so that a change made in
    the finance UI shows in the object's admin history too."""
    return LogEntry.objects.log_actions(
        user.pk,
        [obj],
        ADDITION if added else CHANGE,
        construct_change_message(form, formsets, added),
        single_object=True,
    )
