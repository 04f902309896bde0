"""Customers and invoices imported from CSV or XLSX in the admin (django-import-export), for teams
whose billing system is not Stripe.

A row is read the way staff type into the admin: amounts as ordinary numbers in the invoice's
currency (120.50 EUR, 15000 JPY, 1.250 KWD), phone numbers however they are written, ISO dates.
Each row is validated like a model form, the models' constraints included, so a bad row is reported
with its number and reason instead of failing the file. A blank cell means the field's default (no
external id, nothing paid, status open — or paid when nothing is left to pay).

The admin shows a dry run first; the finance admin then confirms, having chosen between importing the
good rows only and all-or-nothing. Every invoice written goes through `services.invoice_saved`, the
path every other change takes, so open cases reconcile in the same transaction.
"""

import datetime as dt
from decimal import Decimal, InvalidOperation

from django import forms
from django.contrib import messages
from django.core.exceptions import NON_FIELD_ERRORS, MultipleObjectsReturned, ValidationError
from django.db import models
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.encoding import force_str
from import_export import resources
from import_export.admin import ImportMixin
from import_export.fields import Field
from import_export.formats import base_formats
from import_export.forms import ConfirmImportForm, ImportForm
from import_export.widgets import Widget

from dunning_site.accounts import services
from dunning_site.accounts.models import Customer, Invoice
from dunning_site.lib.money import (
    NOT_A_NUMBER,
    UNKNOWN_CURRENCY,
    from_minor_units,
    is_known_currency,
    to_minor_units,
)
from dunning_site.lib.validators import phone_to_e164

EMPTY_CELL = "This cell is empty; it is required."
NEGATIVE_AMOUNT = "Amounts cannot be negative: “%(value)s”."
NOT_A_DATE = "“%(value)s” is not a date; write dates as YYYY-MM-DD, like 2026-01-31."
NO_CUSTOMER_WITH_EXTERNAL_ID = "No customer with external id “%(value)s”."
NO_CUSTOMER_WITH_EMAIL = "No customer with email “%(value)s”."
SEVERAL_CUSTOMERS_WITH_EMAIL = (
    "Several customers have the email “%(value)s”; name the customer in a customer_external_id column."
)
CUSTOMER_MISSING = "Name the customer in a customer_external_id or customer_email column."
CURRENCY_CANNOT_CHANGE = "Invoice %(number)s is in %(currency)s; the currency of an existing invoice cannot change."
ROW_PROBLEM = "Row %(number)s (line %(line)s of the file): %(reasons)s"
NOTHING_IMPORTED = "Nothing was imported: %(count)d row(s) could not be imported and you chose all or nothing."
NOTHING_IMPORTED_ERROR = "Nothing was imported: the import failed, whichever treatment of bad rows you chose."
BAD_ROWS_SKIPPED = "%(count)d bad row(s) were skipped, as you chose; the other rows were imported."
MORE_PROBLEMS = "… and %(count)d more row(s)."
PROBLEMS_LISTED = 20


def cell_text(value) -> str:
    """A cell as text. An empty XLSX cell is None; a number typed in a spreadsheet (an id, a phone
    number) arrives as 12345 or 12345.0 and means the text "12345"."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return force_str(value).strip()


# ---------------------------------------------------------------------------------------------
# Cells into values. A ValueError raised here becomes an error on the row's field.


class TextWidget(Widget):
    def clean(self, value, row=None, **kwargs) -> str:
        return cell_text(value)


class OptionalIdWidget(Widget):
    """External ids are unique when present, so a blank one is no id at all (NULL), never ""."""

    def clean(self, value, row=None, **kwargs) -> str | None:
        return cell_text(value) or None


class LowercaseWidget(Widget):
    def clean(self, value, row=None, **kwargs) -> str:
        return cell_text(value).lower()


class PhoneWidget(Widget):
    def clean(self, value, row=None, **kwargs) -> str:
        try:
            return phone_to_e164(cell_text(value))
        except ValidationError as error:
            raise ValueError(error.messages[0]) from None


class IsoDateWidget(Widget):
    """A date typed as text (2026-01-31) or a date cell of a spreadsheet."""

    def clean(self, value, row=None, **kwargs) -> dt.date:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        text = cell_text(value)
        if not text:
            raise ValueError(EMPTY_CELL)
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            raise ValueError(NOT_A_DATE % {"value": text}) from None

    def render(self, value, obj=None, **kwargs) -> str:
        return value.isoformat() if isinstance(value, dt.date) else ""


class PaymentUrlWidget(Widget):
    """Links typed without a scheme are https, as in the invoice admin."""

    def clean(self, value, row=None, **kwargs) -> str:
        text = cell_text(value)
        if text and "://" not in text:
            text = f"https://{text}"
        return text


class AmountWidget(Widget):
    """An ordinary, non-negative amount (120.50); the field scales it to the currency's minor units."""

    def clean(self, value, row=None, **kwargs) -> Decimal | None:
        text = cell_text(value)
        if not text:
            return None
        try:
            amount = Decimal(text)
        except InvalidOperation:
            raise ValueError(NOT_A_NUMBER) from None
        if not amount.is_finite():
            raise ValueError(NOT_A_NUMBER)
        if amount < 0:
            raise ValueError(NEGATIVE_AMOUNT % {"value": text})
        return amount


class CustomerWidget(Widget):
    """The invoice's customer, found by one of its identifying columns."""

    def __init__(self, lookup: str, attribute: str, missing: str) -> None:
        super().__init__()
        self.lookup, self.attribute, self.missing = lookup, attribute, missing

    def clean(self, value, row=None, **kwargs) -> Customer | None:
        text = cell_text(value)
        if not text:
            return None  # the other column may name the customer
        try:
            return Customer.objects.get(**{self.lookup: text})
        except Customer.DoesNotExist:
            raise ValueError(self.missing % {"value": text}) from None
        except MultipleObjectsReturned:
            raise ValueError(SEVERAL_CUSTOMERS_WITH_EMAIL % {"value": text}) from None

    def render(self, value, obj=None, **kwargs) -> str:
        return (getattr(value, self.attribute, "") or "") if value is not None else ""


# ---------------------------------------------------------------------------------------------
# Fields that need the row's other values


class CurrencyField(Field):
    def save(self, instance, row, is_m2m=False, **kwargs) -> None:
        code = cell_text(row[self.column_name]).upper()
        if not is_known_currency(code):
            raise ValueError(UNKNOWN_CURRENCY % {"code": code})
        if instance.pk and instance.currency != code:
            # Cases are per customer and currency; an invoice moving currency would leave its case wrong.
            raise ValueError(CURRENCY_CANNOT_CHANGE % {"number": instance.number, "currency": instance.currency})
        instance.currency = code


class MoneyField(Field):
    """An amount typed in major units of the invoice's currency, stored in minor units through
    `to_minor_units`, which refuses more decimals than the currency has (JPY 0, EUR 2, KWD 3)."""

    def __init__(self, attribute: str, *, blank_means: int | None = None) -> None:
        super().__init__(attribute=attribute, column_name=attribute, widget=AmountWidget())
        self.blank_means = blank_means

    def save(self, instance, row, is_m2m=False, **kwargs) -> None:
        amount = self.clean(row, **kwargs)
        if amount is None:
            if self.blank_means is None:
                raise ValueError(EMPTY_CELL)
            amount = Decimal(self.blank_means)
        if is_known_currency(instance.currency or ""):
            setattr(instance, self.attribute, to_minor_units(amount, instance.currency))
        # Otherwise the currency's own error stands for the row: an amount means nothing without it.

    def export(self, instance, **kwargs) -> str:
        value = self.get_value(instance)
        if isinstance(value, int) and is_known_currency(instance.currency or ""):
            return str(from_minor_units(value, instance.currency))
        return "" if value is None else force_str(value)


# ---------------------------------------------------------------------------------------------
# Resources


class BookResource(resources.ModelResource):
    """What both imports share: per-row transactions, model validation (constraints included) so a
    bad row becomes a row error, and an honest record of whether anything was written."""

    def before_import(self, dataset, **kwargs) -> None:
        # "Currency " and "Currency" are the column currency: headers are matched loosely.
        if dataset.headers:
            dataset.headers = [cell_text(header).lower() if header is not None else None for header in dataset.headers]

    def skip_row(self, instance, original, row, import_validation_errors=None) -> bool:
        # Spreadsheets often end with formatted but empty rows; they are not bad rows.
        if all(cell_text(value) == "" for value in row.values()):
            return True
        return super().skip_row(instance, original, row, import_validation_errors)

    def import_data(
        self,
        dataset,
        dry_run=False,
        raise_errors=False,
        use_transactions=None,
        collect_failed_rows=False,
        rollback_on_validation_errors=False,
        **kwargs,
    ):
        result = super().import_data(
            dataset,
            dry_run=dry_run,
            raise_errors=raise_errors,
            use_transactions=use_transactions,
            collect_failed_rows=collect_failed_rows,
            rollback_on_validation_errors=rollback_on_validation_errors,
            **kwargs,
        )
        # import_data rolls the whole import back on any of these; the admin must not report
        # "3 new" for rows that are gone.
        result.rolled_back = (
            dry_run or result.has_errors() or (rollback_on_validation_errors and result.has_validation_errors())
        )
        return result


class CustomerResource(BookResource):
    external_id = Field(attribute="external_id", column_name="external_id", widget=OptionalIdWidget())
    name = Field(attribute="name", column_name="name", widget=TextWidget())
    company = Field(attribute="company", column_name="company", widget=TextWidget())
    email = Field(attribute="email", column_name="email", widget=TextWidget())
    phone = Field(attribute="phone", column_name="phone", widget=PhoneWidget())
    time_zone = Field(attribute="time_zone", column_name="time_zone", widget=TextWidget(), default="UTC")
    language = Field(attribute="language", column_name="language", widget=TextWidget(), default="en")
    segment = Field(attribute="segment", column_name="segment", widget=TextWidget(), default="standard")
    postal_address = Field(attribute="postal_address", column_name="postal_address", widget=TextWidget())

    class Meta:
        model = Customer
        fields = (
            "external_id",
            "name",
            "company",
            "email",
            "phone",
            "time_zone",
            "language",
            "segment",
            "postal_address",
        )
        import_order = fields
        import_id_fields = ["external_id"]
        use_transactions = True
        clean_model_instances = True
        skip_unchanged = True

    def before_import(self, dataset, **kwargs) -> None:
        super().before_import(dataset, **kwargs)
        # A file without external ids only creates customers.
        if dataset.headers and "external_id" not in dataset.headers:
            dataset.append_col([""] * len(dataset), header="external_id")

    def get_instance(self, instance_loader, row):
        if not cell_text(row.get("external_id")):
            return None  # blank: a new customer (looking up NULL would match any customer without one)
        return super().get_instance(instance_loader, row)


class InvoiceResource(BookResource):
    number = Field(attribute="number", column_name="number", widget=TextWidget())
    customer_external_id = Field(
        attribute="customer",
        column_name="customer_external_id",
        widget=CustomerWidget("external_id", "external_id", NO_CUSTOMER_WITH_EXTERNAL_ID),
        saves_null_values=False,
    )
    customer_email = Field(
        attribute="customer",
        column_name="customer_email",
        widget=CustomerWidget("email__iexact", "email", NO_CUSTOMER_WITH_EMAIL),
        saves_null_values=False,
    )
    currency = CurrencyField(attribute="currency", column_name="currency")
    total = MoneyField("total")
    amount_paid = MoneyField("amount_paid", blank_means=0)
    issued_on = Field(attribute="issued_on", column_name="issued_on", widget=IsoDateWidget())
    due_on = Field(attribute="due_on", column_name="due_on", widget=IsoDateWidget())
    status = Field(attribute="status", column_name="status", widget=LowercaseWidget(), default=Invoice.Status.OPEN)
    external_id = Field(attribute="external_id", column_name="external_id", widget=OptionalIdWidget())
    hosted_payment_url = Field(
        attribute="hosted_payment_url", column_name="hosted_payment_url", widget=PaymentUrlWidget()
    )

    class Meta:
        model = Invoice
        # The currency comes before the amounts: they are read in it.
        fields = (
            "number",
            "customer_external_id",
            "customer_email",
            "currency",
            "total",
            "amount_paid",
            "issued_on",
            "due_on",
            "status",
            "external_id",
            "hosted_payment_url",
        )
        import_order = fields
        import_id_fields = ["number"]
        use_transactions = True
        clean_model_instances = True
        skip_unchanged = True

    def import_instance(self, instance, row, **kwargs) -> None:
        errors = {}
        try:
            super().import_instance(instance, row, **kwargs)
        except ValidationError as error:
            errors = error.update_error_dict(errors)
        if instance.customer_id is None and "customer" not in errors:
            errors["customer"] = [CUSTOMER_MISSING]
        # As invoice_create decides: an open invoice with nothing left to pay is paid.
        if instance.status == Invoice.Status.OPEN and instance.total and instance.amount_paid == instance.total:
            instance.status = Invoice.Status.PAID
        if errors:
            raise ValidationError(errors)

    def validate_instance(self, instance, import_validation_errors=None, validate_unique=True) -> None:
        errors = dict(import_validation_errors or {})
        exclude = set(errors)
        if "currency" in errors:
            exclude |= {"total", "amount_paid"}  # not read: the currency's error says why
        try:
            instance.full_clean(exclude=exclude, validate_unique=validate_unique)
        except ValidationError as error:
            errors = error.update_error_dict(errors)
        if errors:
            raise ValidationError(errors)

    def after_save_instance(self, instance, row, **kwargs) -> None:
        # The same path as an invoice saved in the admin: open cases reconcile in this row's
        # transaction. import-export passes the admin user as `user`. A dry run only previews.
        if not kwargs.get("dry_run"):
            services.invoice_saved(invoice=instance, actor=kwargs.get("user"))


# ---------------------------------------------------------------------------------------------
# The admin side: the choice about bad rows, the preview, the confirmation


class BadRows(models.TextChoices):
    SKIP = "skip", "Import the good rows, skip the bad ones"
    ALL_OR_NOTHING = "all_or_nothing", "All or nothing: if any row is bad, import nothing"


class BookImportForm(ImportForm):
    bad_rows = forms.ChoiceField(
        label="If some rows are bad",
        choices=BadRows.choices,
        initial=BadRows.ALL_OR_NOTHING,
        widget=forms.RadioSelect,
        help_text="Either way, a dry run lists every bad row with its reason before anything is written.",
    )


class BookConfirmImportForm(ConfirmImportForm):
    bad_rows = forms.ChoiceField(choices=BadRows.choices, widget=forms.HiddenInput)


def row_problems(result) -> list[str]:
    """Every bad row of an import result, with its number and reasons, for a message."""
    problems = []
    for row in result.invalid_rows:
        reasons = [
            message if field == NON_FIELD_ERRORS else f"{field}: {message}"
            for field, field_messages in row.error_dict.items()
            for message in field_messages
        ]
        problems.append((row.number, reasons))
    for row in result.error_rows:
        problems.append((row.number, [force_str(error.error) for error in row.errors]))
    return [
        ROW_PROBLEM % {"number": number, "line": number + 1, "reasons": "; ".join(reasons)}
        for number, reasons in sorted(problems)
    ]


class BookImportMixin(ImportMixin):
    """Import into the admin of a book model (customers, invoices): CSV or XLSX, a dry run with
    row-level errors, then a confirmation that honours the chosen treatment of bad rows."""

    import_form_class = BookImportForm
    confirm_form_class = BookConfirmImportForm
    import_template_name = "admin/accounts/import.html"
    import_formats = [base_formats.CSV, base_formats.XLSX]
    import_error_display = ("message", "row")

    def has_import_permission(self, request) -> bool:
        # An import adds and changes rows: it needs both rights, not just access to the admin.
        return self.has_add_permission(request) and self.has_change_permission(request)

    def get_confirm_form_initial(self, request, import_form):
        initial = super().get_confirm_form_initial(request, import_form)
        if import_form is not None:
            initial["bad_rows"] = import_form.cleaned_data["bad_rows"]
        return initial

    def get_import_data_kwargs(self, **kwargs):
        form = kwargs.get("form")
        kwargs = super().get_import_data_kwargs(**kwargs)
        choice = getattr(form, "cleaned_data", {}).get("bad_rows")
        # Anything but an explicit "skip" is all or nothing: a bad row rolls the whole file back.
        kwargs["rollback_on_validation_errors"] = choice != BadRows.SKIP
        return kwargs

    def import_action(self, request, **kwargs):
        response = super().import_action(request, **kwargs)
        context = getattr(response, "context_data", None)
        if not context or context.get("result") is None:
            return response
        result, form = context["result"], context["form"]
        choice = form.cleaned_data.get("bad_rows")
        context["bad_rows"] = choice
        # import-export offers the confirmation only for a spotless file; skipping bad rows means
        # confirming one with bad rows too, as long as something good is left to import.
        if (
            "confirm_form" not in context
            and choice == BadRows.SKIP
            and not result.has_errors()
            and any(row.import_type != row.IMPORT_TYPE_SKIP for row in result.valid_rows())
        ):
            context["confirm_form"] = self.create_confirm_form(request, import_form=form)
        return response

    def process_result(self, result, request):
        problems = row_problems(result)
        shown = [*problems[:PROBLEMS_LISTED]]
        if len(problems) > PROBLEMS_LISTED:
            shown.append(MORE_PROBLEMS % {"count": len(problems) - PROBLEMS_LISTED})
        if result.rolled_back:
            if result.has_errors():
                messages.error(request, NOTHING_IMPORTED_ERROR)
                for error in result.base_errors:
                    messages.error(request, force_str(error.error))
            else:
                messages.error(request, NOTHING_IMPORTED % {"count": len(problems)})
            for problem in shown:
                messages.error(request, problem)
            app_label, model_name = self.get_model_info()
            url = reverse(f"admin:{app_label}_{model_name}_changelist", current_app=self.admin_site.name)
            return HttpResponseRedirect(url)
        response = super().process_result(result, request)
        if problems:
            messages.warning(request, BAD_ROWS_SKIPPED % {"count": len(problems)})
            for problem in shown:
                messages.warning(request, problem)
        return response
