"""Every message gets an unguessable tracking token; delivery events find their message by it.

Added in three steps, as a unique field with a random default must be: nullable, filled row by row
(a default in AddField would give every existing row the same value), then unique and required.
"""

import secrets

from django.db import migrations, models

import dunning_site.notifications.models


def fill_tracking_tokens(apps, schema_editor):
    Message = apps.get_model("notifications", "Message")
    while True:
        batch = list(Message.objects.filter(tracking_token__isnull=True).only("pk")[:1000])
        if not batch:
            return
        for message in batch:
            message.tracking_token = secrets.token_urlsafe(32)
        Message.objects.bulk_update(batch, ["tracking_token"])


class Migration(migrations.Migration):

    dependencies = [
        ("notifications", "0003_message_address_may_be_blank"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="tracking_token",
            field=models.CharField(editable=False, max_length=64, null=True),
        ),
        migrations.RunPython(fill_tracking_tokens, migrations.RunPython.noop, elidable=True),
        migrations.AlterField(
            model_name="message",
            name="tracking_token",
            field=models.CharField(
                default=dunning_site.notifications.models.new_tracking_token,
                editable=False,
                max_length=64,
                unique=True,
            ),
        ),
    ]
