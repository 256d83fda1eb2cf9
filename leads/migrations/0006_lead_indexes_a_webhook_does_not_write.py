"""Indexes of leads that a new webhook lead does not write (bench/webhook: every index is
one more page written while the webhook holds SQLite's write lock, one more index insert
on PostgreSQL).

- `email` and `phone` are indexed only where not empty, and `lead_stage_created` only
  where the lead has a stage: a lead waiting for its fetch has none of them yet.
- `db_index` and `unique=True` on PostgreSQL add a LIKE (varchar_pattern_ops) index per
  text column, which no query here uses: `full_name` keeps its plain index (same name), and
  `leadgen_id` its unique constraint (same name), both now declared in `Meta`.

Fields' state changes are Django's; the database changes are plain DROP and CREATE INDEX,
because SQLite would otherwise rebuild the whole table for each altered field.
"""

from django.db import migrations, models

# Indexes that `db_index=True` and `unique=True` made (Django's names, the same on every
# installation), by column; the LIKE ones exist on PostgreSQL only.
REPLACED = {"leads_lead_email_93d5b817": "email", "leads_lead_phone_894df808": "phone"}
LIKE = {
    "leads_lead_email_93d5b817_like": "email",
    "leads_lead_phone_894df808_like": "phone",
    "leads_lead_full_name_5fafa4a4_like": "full_name",
    "leads_lead_leadgen_id_39dd47ad_like": "leadgen_id",
}


def drop_indexes(apps, schema_editor):
    for name in [*REPLACED, *LIKE]:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


def restore_indexes(apps, schema_editor):
    for name, column in REPLACED.items():
        schema_editor.execute(f'CREATE INDEX "{name}" ON "leads_lead" ("{column}")')
    if schema_editor.connection.vendor == "postgresql":
        for name, column in LIKE.items():
            schema_editor.execute(
                f'CREATE INDEX "{name}" ON "leads_lead" ("{column}" varchar_pattern_ops)'
            )


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0005_lead_indexes_without_redundant_ones"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_indexes, restore_indexes)],
            state_operations=[
                migrations.AlterField(
                    model_name="lead",
                    name="email",
                    field=models.CharField(blank=True, max_length=254, verbose_name="email"),
                ),
                migrations.AlterField(
                    model_name="lead",
                    name="full_name",
                    field=models.CharField(blank=True, max_length=255, verbose_name="name"),
                ),
                migrations.AlterField(
                    model_name="lead",
                    name="leadgen_id",
                    field=models.CharField(max_length=64, verbose_name="leadgen id"),
                ),
                migrations.AlterField(
                    model_name="lead",
                    name="phone",
                    field=models.CharField(blank=True, max_length=64, verbose_name="phone"),
                ),
                # Both exist already, under these names.
                migrations.AddIndex(
                    model_name="lead",
                    index=models.Index(fields=["full_name"], name="leads_lead_full_name_5fafa4a4"),
                ),
                migrations.AddConstraint(
                    model_name="lead",
                    constraint=models.UniqueConstraint(
                        fields=("leadgen_id",), name="leads_lead_leadgen_id_key"
                    ),
                ),
            ],
        ),
        migrations.RemoveIndex(model_name="lead", name="lead_stage_created"),
        migrations.AddIndex(
            model_name="lead",
            index=models.Index(
                condition=models.Q(("stage__isnull", False)),
                fields=["stage", "-created_time"],
                name="lead_stage_created",
            ),
        ),
        migrations.AddIndex(
            model_name="lead",
            index=models.Index(
                condition=models.Q(("email", ""), _negated=True),
                fields=["email"],
                name="lead_email",
            ),
        ),
        migrations.AddIndex(
            model_name="lead",
            index=models.Index(
                condition=models.Q(("phone", ""), _negated=True),
                fields=["phone"],
                name="lead_phone",
            ),
        ),
    ]
