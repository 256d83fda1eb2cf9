"""One sender at a time, one queued send task at a time (capi.lease): a lease on the sender's
status row that expires by itself, and a mark that a send task is already queued."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("capi", "0002_sent_events_are_final"),
    ]

    operations = [
        migrations.AddField(
            model_name="senderstate",
            name="lease_token",
            field=models.CharField(blank=True, editable=False, max_length=32),
        ),
        migrations.AddField(
            model_name="senderstate",
            name="lease_until",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="senderstate",
            name="send_queued_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]
