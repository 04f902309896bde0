import django.db.models.deletion
import django.db.models.expressions
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    """Write-offs reduce what an invoice shows as owed: credit notes, their sum on the invoice, and
    amount_remaining recomputed from it. A generated column cannot be altered in place (Django refuses
    it), so amount_remaining is dropped and added again with its new expression; the database fills it."""

    dependencies = [
        ("accounts", "0007_invoice_pdf_url"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="CreditNote",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("amount", models.BigIntegerField(help_text="In minor units of the invoice's currency.")),
                ("reason", models.CharField(max_length=500)),
                ("at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "external_id",
                    models.CharField(
                        blank=True,
                        help_text="Id in the billing system (Stripe cn_…).",
                        max_length=255,
                        null=True,
                        unique=True,
                    ),
                ),
                (
                    "invoice",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT, related_name="credit_notes", to="accounts.invoice"
                    ),
                ),
                (
                    "recorded_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"ordering": ["at", "pk"]},
        ),
        migrations.AddConstraint(
            model_name="creditnote",
            constraint=models.CheckConstraint(
                condition=models.Q(("amount__gt", 0)),
                name="credit_note_amount_positive",
                violation_error_message="A credit note must be more than zero.",
            ),
        ),
        migrations.AddField(
            model_name="invoice",
            name="amount_written_off",
            field=models.BigIntegerField(
                default=0,
                help_text="Credited by write-offs (the sum of the invoice's credit notes), in minor units: no longer owed.",
            ),
        ),
        migrations.AddConstraint(
            model_name="invoice",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("amount_written_off__gte", 0),
                    (
                        "amount_written_off__lte",
                        django.db.models.expressions.CombinedExpression(
                            models.F("total"), "-", models.F("amount_paid")
                        ),
                    ),
                ),
                name="invoice_written_off_within_unpaid",
                violation_error_message="What is written off must be between zero and what is left unpaid.",
            ),
        ),
        migrations.RemoveField(model_name="invoice", name="amount_remaining"),
        migrations.AddField(
            model_name="invoice",
            name="amount_remaining",
            field=models.GeneratedField(
                db_persist=True,
                expression=django.db.models.expressions.CombinedExpression(
                    django.db.models.expressions.CombinedExpression(models.F("total"), "-", models.F("amount_paid")),
                    "-",
                    models.F("amount_written_off"),
                ),
                output_field=models.BigIntegerField(),
            ),
        ),
    ]
