"""A webhook delivery's body size, SHA-256 and whether the body is kept whole.

From now on a delivery whose signature fails keeps its first 4 KiB only; these say what
the rest was. Deliveries stored before keep their bodies; their size and digest are
computed here, a hundred at a time.

On SQLite the columns are added with `ALTER TABLE ... ADD COLUMN ... DEFAULT`, not by
Django's rebuild of the table (one for each column with a default): that would copy every
stored body three times, on a disk that the bodies may already have filled. The default
stays in the table's definition, where it does no harm (Django always writes a value).
"""

import hashlib

from django.db import migrations, models


class AddFieldInPlace(migrations.AddField):
    """AddField, which on SQLite adds the column in place instead of rebuilding the table."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "sqlite":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        field = model._meta.get_field(self.name)
        # SQLite takes the default as a literal in the definition (`params` is empty).
        definition, params = schema_editor.column_sql(model, field, include_default=True)
        schema_editor.execute(
            f"ALTER TABLE {schema_editor.quote_name(model._meta.db_table)} "
            f"ADD COLUMN {schema_editor.quote_name(field.column)} {definition}",
            params,
        )


def fill_sizes_and_digests(apps, schema_editor):
    delivery = apps.get_model("leads", "WebhookDelivery")
    pks = list(delivery.objects.order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(pks), 100):
        rows = list(delivery.objects.filter(pk__in=pks[start : start + 100]).only("pk", "body"))
        for row in rows:
            body = bytes(row.body)
            row.body_size = len(body)
            row.body_sha256 = hashlib.sha256(body).hexdigest()
        delivery.objects.bulk_update(rows, ["body_size", "body_sha256"])


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0006_lead_indexes_a_webhook_does_not_write"),
    ]

    operations = [
        AddFieldInPlace(
            model_name="webhookdelivery",
            name="body_size",
            field=models.PositiveIntegerField(default=0, verbose_name="body size"),
        ),
        AddFieldInPlace(
            model_name="webhookdelivery",
            name="body_sha256",
            field=models.CharField(blank=True, max_length=64, verbose_name="body SHA-256"),
        ),
        AddFieldInPlace(
            model_name="webhookdelivery",
            name="body_truncated",
            field=models.BooleanField(default=False, verbose_name="body truncated"),
        ),
        migrations.RunPython(fill_sizes_and_digests, migrations.RunPython.noop),
    ]
